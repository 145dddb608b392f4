"""All-or-nothing file writes: through a temporary name in the same folder, then one rename."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np


def atomic_write(path: Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` then rename ``tmp`` to ``path``: readers never see a half-written ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".partial.{path.name}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_json(path: Path, data: dict) -> Path:
    return atomic_write(path, lambda p: p.write_text(json.dumps(data, indent=2) + "\n"))


def write_nifti_mask(path: Path, mask: np.ndarray, affine: np.ndarray) -> Path:
    """Save a uint8 mask with its RAS affine (qform and sform, mm units) atomically."""
    import nibabel as nib

    img = nib.Nifti1Image(np.asarray(mask, dtype=np.uint8), affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm")
    return atomic_write(Path(path), lambda p: nib.save(img, str(p)))
