"""Files that ship with arena-seg: the MONAI Label app and the embedded default model.

A wheel carries them inside the package (``arena_seg/_app``, ``arena_seg/_sample/default``: see setup.py); an
editable install or a checkout finds them in the source tree (``apps/arena_seg``, ``sample-data/default``).
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
SOURCE_ROOT = PACKAGE_DIR.parents[1]  # the repository, when this is src/arena_seg of a checkout


def _first_existing(*candidates: Path) -> Path:
    """The first candidate that exists; else the last one (so that an error message names the source tree)."""
    for path in candidates:
        if path.exists():
            return path
    return candidates[-1]


def app_dir() -> Path:
    """Folder of the MONAI Label app (what ``monailabel start_server --app`` takes)."""
    return _first_existing(PACKAGE_DIR / "_app", SOURCE_ROOT / "apps" / "arena_seg")


def sample_model_dir() -> Path:
    """Folder of the embedded default network (network.json + network.safetensors + model card)."""
    return _first_existing(PACKAGE_DIR / "_sample" / "default", SOURCE_ROOT / "sample-data" / "default")
