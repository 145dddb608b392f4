"""Uploaded volumes are read only in self-contained formats, and their size is checked from the header first.

A detached-header format names the file that holds its voxels: an NRRD with ``data file: /etc/passwd`` (or an
``.mhd`` with ``ElementDataFile``) would make the server read, and later serve back, any file it can open. So an
upload must be NIfTI (``.nii``, ``.nii.gz``) or NRRD with its data attached (``.nrrd``, ``.seg.nrrd``). A label's
header must also fit its image before its voxels are read: a small gzip can claim a huge volume.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from arena_seg.errors import InputError

UPLOAD_SUFFIXES = (".nii.gz", ".nii", ".seg.nrrd", ".nrrd")
_DETACHED = {"data file", "datafile"}  # NRRD keys naming the file(s) that hold the data


def check_upload(path: str | Path, what: str = "upload") -> Path:
    """``path`` when its format is self-contained; :class:`InputError` naming the accepted formats otherwise."""
    path = Path(path)
    name = path.name.lower()
    if not name.endswith(UPLOAD_SUFFIXES):
        raise InputError(f"{what} {path.name!r}: send a self-contained volume ({', '.join(UPLOAD_SUFFIXES)}); "
                         "formats whose header names another data file (.mhd, .nhdr, .hdr/.img) are refused")
    if name.endswith(".nrrd"):
        header = nrrd_header(path, what)
        if _DETACHED & {str(k).lower() for k in header}:
            raise InputError(f"{what} {path.name!r} is an NRRD header with detached data ('data file'); save it "
                             "with its data attached (one .nrrd or .seg.nrrd file)")
    return path


def nrrd_header(path: Path, what: str = "upload") -> dict:
    import nrrd

    try:
        return dict(nrrd.read_header(str(path)))
    except Exception as exc:  # any parser failure means the file is unusable
        raise InputError(f"{what} {path.name} is not a readable NRRD file ({exc})") from exc


def header_shape(path: str | Path, what: str = "label") -> tuple[int, ...]:
    """The voxel shape a NIfTI/NRRD header claims (spatial axes only for a layered .seg.nrrd), without reading
    the voxels."""
    path = Path(check_upload(path, what))
    if path.name.lower().endswith(".nrrd"):
        header = nrrd_header(path, what)
        sizes = [int(s) for s in np.atleast_1d(header.get("sizes", []))]
        directions = header.get("space directions")
        if directions is not None and len(sizes) == 4:
            rows = list(directions)
            sizes = [s for s, row in zip(sizes, rows, strict=False)
                     if row is not None and np.all(np.isfinite(np.asarray(row, dtype=float)))]
        return tuple(sizes)
    import nibabel as nib

    try:
        return tuple(int(s) for s in nib.load(str(path)).shape)
    except Exception as exc:
        raise InputError(f"{what} {path.name} cannot be read ({type(exc).__name__}: {exc}); is it a complete "
                         "NIfTI file?") from exc


def check_label_header(path: str | Path, image_shape: tuple[int, ...]) -> None:
    """Refuse, before reading its voxels, a label whose header cannot fit the image: not 3-D, more voxels than the
    image, or other dimensions (a .seg.nrrd may be smaller: Slicer crops a segmentation to its segments)."""
    shape = header_shape(path)
    name = Path(path).name
    spatial = tuple(s for s in shape if s != 1) if len(shape) > 3 else shape
    if len(spatial) != 3:
        raise InputError(f"label {name} has shape {shape}; a 3-D volume is needed")
    voxels, image_voxels = int(np.prod(spatial, dtype=np.float64)), int(np.prod(image_shape))
    if voxels > image_voxels:
        raise InputError(f"label {name} claims {' x '.join(map(str, spatial))} = {voxels:.3g} voxels but its image "
                         f"has {image_voxels:.3g}; save the label on the image's grid")
    cropped = name.lower().endswith(".nrrd") and all(a <= b for a, b in zip(spatial, image_shape, strict=True))
    if spatial != tuple(image_shape) and not cropped:
        raise InputError(f"label {name} has shape {shape} but its image has {tuple(image_shape)}; save the label "
                         "on the image's grid")
