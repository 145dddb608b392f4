"""Foundation networks: specs (builder, preprocessing, labels, ARENA targets, head) and weight loading."""

from . import registry
from .registry import *  # noqa: F403  (the public API is the registry's __all__)

__all__ = list(registry.__all__)
