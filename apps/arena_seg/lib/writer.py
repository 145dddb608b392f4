"""Writing an inference result (a label map on the image's grid) as NRRD or NIfTI, as the client asks."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from arena_seg.data.orientation import ras_to_lps
from arena_seg.errors import InputError
from arena_seg.files import write_nifti

EXTENSIONS = (".nrrd", ".seg.nrrd", ".nii.gz", ".nii")
DTYPES = ("uint8", "uint16", "int16", "int32", "float32")


def check_result_format(extension: str | None, dtype: str | None, max_value: int) -> tuple[str, str]:
    """Validate ``result_extension`` / ``result_dtype`` of a request (defaults: .nii.gz, uint8 or uint16)."""
    ext = extension or ".nii.gz"
    if ext not in EXTENSIONS:
        raise InputError(f"result_extension {ext!r}: give one of {', '.join(EXTENSIONS)}")
    kind = dtype or ("uint8" if max_value < 256 else "uint16")
    if kind not in DTYPES:
        raise InputError(f"result_dtype {kind!r}: give one of {', '.join(DTYPES)}")
    if max_value >= np.iinfo(np.uint8).max + 1 and kind == "uint8":
        raise InputError(f"result_dtype uint8 cannot hold label {max_value}; ask for uint16")
    return ext, kind


def write_result(mask: np.ndarray, affine: np.ndarray, extension: str, dtype: str) -> str:
    """Write ``mask`` (X, Y, Z) with its RAS ``affine`` to a new temporary file; returns its path."""
    fd, path = tempfile.mkstemp(suffix=extension)
    os.close(fd)
    values = mask.astype(dtype)
    if extension.endswith(".nrrd"):
        _write_itk(values, affine, path)
    else:
        write_nifti(path, values, affine)
    return path


def _write_itk(values: np.ndarray, affine: np.ndarray, path: str) -> None:
    """NRRD through SimpleITK: LPS geometry from the RAS affine (what Slicer and read_volume expect)."""
    import SimpleITK as sitk

    lps = ras_to_lps(affine)
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    direction = lps[:3, :3] / spacing
    img = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(values, (2, 1, 0))))
    img.SetSpacing([float(s) for s in spacing])
    img.SetDirection([float(d) for d in direction.ravel()])
    img.SetOrigin([float(o) for o in lps[:3, 3]])
    sitk.WriteImage(img, str(Path(path)), useCompression=True)
