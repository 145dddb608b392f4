"""RAS (NIfTI, nibabel) and LPS (DICOM, ITK, NRRD) patient frames: the same axes with x and y reversed."""

from __future__ import annotations

import numpy as np

#: maps LPS world coordinates to RAS and back (it is its own inverse)
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def flip_lps_ras(affine: np.ndarray) -> np.ndarray:
    """A 4×4 voxel-to-world affine in the other frame: LPS → RAS, or RAS → LPS (the same flip of x and y)."""
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4):
        raise ValueError(f"affine must be 4x4, got {affine.shape}")
    return LPS_TO_RAS @ affine


lps_to_ras = flip_lps_ras
ras_to_lps = flip_lps_ras
