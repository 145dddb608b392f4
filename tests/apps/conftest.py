"""Fixtures of the MONAI Label app's tests; they live in app_support.py, which the test files also import."""

from app_support import coarse_default, coarse_network_dir  # noqa: F401
