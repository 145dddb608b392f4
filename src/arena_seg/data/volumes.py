"""Reading and checking CT volumes and label files before any work starts (clear errors, nothing written)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from arena_seg.data.orientation import lps_to_ras
from arena_seg.errors import InputError

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".seg.nrrd", ".mha", ".mhd")
MAX_VOXELS = 1024**3  # a 0.5 mm whole-body CT is ~0.6 G voxels; a header claiming more is refused before reading


@dataclass
class Volume:
    """A volume's voxels (X, Y, Z) and its RAS affine (4×4), as nibabel gives them."""

    array: np.ndarray
    affine: np.ndarray
    path: Path

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)


def read_volume(path: str | Path, what: str = "image") -> Volume:
    """Read a 3-D NIfTI/NRRD/MHA volume; a missing, corrupt or non-3-D file raises :class:`InputError`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} {path} does not exist; give the path of a .nii.gz, .nrrd or .mha file")
    try:
        if path.name.endswith((".nii", ".nii.gz")):
            import nibabel as nib

            img = nib.load(str(path))
            _check_size(img.shape, path, what)
            array = np.asanyarray(img.dataobj)
            affine = np.asarray(img.affine, dtype=np.float64)
        else:
            array, affine = _read_itk(path)
    except InputError:
        raise
    except Exception as exc:  # any reader failure means the file is unusable, whatever the library
        raise InputError(f"{what} {path} cannot be read ({type(exc).__name__}: {exc}); is it a complete "
                         "NIfTI/NRRD file?") from exc
    array = np.squeeze(array) if array.ndim > 3 else array
    if array.ndim != 3:
        raise InputError(f"{what} {path} has shape {tuple(array.shape)}; a 3-D volume is needed")
    if min(array.shape) < 2:
        raise InputError(f"{what} {path} has shape {tuple(array.shape)}; every axis needs at least 2 voxels")
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        raise InputError(f"{what} {path} holds NaN or infinite values; export it again from the scanner or viewer")
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        raise InputError(f"{what} {path} has no usable voxel-to-world matrix (affine {affine[:3, :3].tolist()})")
    return Volume(array=array, affine=affine, path=path)


def _check_size(shape: tuple[int, ...], path: Path, what: str) -> None:
    """Refuse, from the header alone, a volume too large to allocate (a corrupt or hostile header)."""
    voxels = int(np.prod([max(int(s), 1) for s in shape], dtype=np.float64))
    if voxels > MAX_VOXELS:
        raise InputError(f"{what} {path} claims {' x '.join(str(s) for s in shape)} = {voxels:.3g} voxels, more "
                         f"than the {MAX_VOXELS:.3g} allowed; is the header corrupt?")


def _read_itk(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    _check_size(reader.GetSize(), path, "volume")
    img = reader.Execute()
    array = sitk.GetArrayFromImage(img)  # (z, y, x) in ITK's LPS index order
    if array.ndim == 4 and img.GetNumberOfComponentsPerPixel() > 1:
        raise InputError(f"{path} holds {img.GetNumberOfComponentsPerPixel()} components per voxel; "
                         "save the segmentation as a single labelmap")
    array = np.transpose(array, tuple(reversed(range(array.ndim))))
    direction = np.asarray(img.GetDirection(), dtype=np.float64).reshape(3, 3)
    affine = np.eye(4)
    affine[:3, :3] = direction * np.asarray(img.GetSpacing())
    affine[:3, 3] = img.GetOrigin()
    return array, lps_to_ras(affine)


def check_label(image: Volume, label: Volume, ids: list[int] | None = None, atol: float = 1e-3) -> np.ndarray:
    """Check that ``label`` fits ``image`` and holds the requested ids; returns the ids present (sorted)."""
    if label.shape != image.shape:
        raise InputError(f"label {label.path} has shape {label.shape} but image {image.path} has {image.shape}; "
                         "save the label on the image's grid")
    if not np.allclose(label.affine, image.affine, atol=atol):
        raise InputError(f"label {label.path} is not on the grid of image {image.path} (affines differ by "
                         f"{np.abs(label.affine - image.affine).max():.3g} mm); save the label on the image's grid")
    values = label.array
    if not np.issubdtype(values.dtype, np.integer) and (
        not np.all(np.isfinite(values)) or not np.allclose(values, np.round(values))
    ):
        raise InputError(f"label {label.path} holds non-integer values; a label map of organ ids is needed")
    present = np.unique(values.astype(np.int64))
    present = present[present != 0]
    if present.size == 0:
        raise InputError(f"label {label.path} is empty (all background); draw the organ or leave the scan out")
    if ids is not None:
        missing = [i for i in ids if i not in set(present.tolist())]
        if len(missing) == len(ids):
            raise InputError(f"label {label.path} holds ids {present.tolist()} but none of the requested ids "
                             f"{ids}; check --label NAME=ID")
    return present
