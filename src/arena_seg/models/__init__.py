"""Foundation networks: specs (builder, preprocessing, labels, ARENA targets, head) and weight loading."""

from .registry import (
    CheckpointError,
    FoundationSpec,
    Preprocessing,
    build_network,
    default_model_dir,
    get_spec,
    list_foundations,
    load_foundation,
    load_network,
    replace_head,
    save_network,
)

__all__ = [
    "CheckpointError",
    "FoundationSpec",
    "Preprocessing",
    "build_network",
    "default_model_dir",
    "get_spec",
    "list_foundations",
    "load_foundation",
    "load_network",
    "replace_head",
    "save_network",
]
