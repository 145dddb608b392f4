"""Find DICOM series under a folder, check that their geometry can be trusted, and read them as CT volumes.

A volume comes back as float32 HU indexed (X, Y, Z) = (column, row, slice) with a RAS affine, as nibabel (and
SimpleITK's series reader, after LPS → RAS) would describe the same series: slices sorted by their position
along the slice normal, origin at the first slice, spacing between slices taken from the positions. Compressed
transfer syntaxes decode through pydicom's handlers (pylibjpeg: JPEG 2000, JPEG-LS, JPEG lossless; RLE).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["DicomSeries", "SeriesError", "SeriesFiles", "find_dicom_series", "read_dicom_series", "series_geometry"]

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_NON_IMAGE_MODALITIES = {"SEG", "SR", "RTSTRUCT", "RTPLAN", "RTDOSE", "PR", "KO", "DOC"}


class SeriesError(Exception):
    """A series that cannot be segmented as it is; the message is the reason given in the report."""


@dataclass
class SeriesFiles:
    """The files of one series (SeriesInstanceUID), found anywhere under the searched folder."""

    uid: str
    files: list[Path]
    modality: str = ""
    description: str = ""

    @property
    def folder(self) -> Path:
        """The deepest folder holding every file of the series."""
        return Path(os.path.commonpath([str(f.parent) for f in self.files]))


@dataclass
class DicomSeries:
    """A read series: HU volume (X, Y, Z), RAS affine, and the headers (no pixels) in slice order."""

    uid: str
    array: np.ndarray
    affine: np.ndarray
    headers: list = field(repr=False)
    files: list[Path] = field(repr=False)

    @property
    def spacing(self) -> tuple[float, float, float]:
        return tuple(float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))


def _read_header(path: Path):
    """The header of a DICOM file without its pixels; None when the file is not DICOM."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(str(path), stop_before_pixels=True)
    except InvalidDicomError:
        if path.suffix.lower() not in ("", ".dcm", ".dicom", ".ima"):
            return None
        try:  # files written without the 128-byte preamble
            ds = pydicom.dcmread(str(path), stop_before_pixels=True, force=True)
        except Exception:
            return None
        return ds if "SOPClassUID" in ds and "SeriesInstanceUID" in ds else None


def find_dicom_series(root: str | Path, exclude: tuple[str | Path, ...] = ()
                      ) -> tuple[list[SeriesFiles], list[tuple[Path, str]]]:
    """Group the DICOM image files under ``root`` by SeriesInstanceUID, whatever their names.

    Returns the series (sorted by UID, files sorted) and the files that look like DICOM but whose header
    cannot be read, with the reason. Folders in ``exclude`` (e.g. the output folder) are not searched.
    """
    root = Path(root)
    skip = {Path(e).resolve() for e in exclude}
    groups: dict[str, SeriesFiles] = {}
    unreadable: list[tuple[Path, str]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and (Path(dirpath) / d).resolve() not in skip)
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if name.startswith(".") or name.endswith((".nii", ".nii.gz", ".json", ".txt")):
                continue
            try:
                ds = _read_header(path)
            except Exception as exc:  # a DICOM file whose header is damaged
                unreadable.append((path, f"{type(exc).__name__}: {exc}"))
                continue
            if ds is None:
                continue  # not DICOM
            if "SeriesInstanceUID" not in ds or "Rows" not in ds:
                sop = getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", None)
                if sop is not None and "Image Storage" in getattr(sop, "name", ""):
                    unreadable.append((path, f"{sop.name} file with an incomplete header (truncated?)"))
                continue  # a DICOMDIR or another non-image object
            if str(ds.get("Modality", "")).upper() in _NON_IMAGE_MODALITIES:
                continue
            uid = str(ds.SeriesInstanceUID)
            entry = groups.setdefault(uid, SeriesFiles(uid, [], str(ds.get("Modality", "")),
                                                       str(ds.get("SeriesDescription", ""))))
            entry.files.append(path)
    series = [groups[uid] for uid in sorted(groups)]
    for s in series:
        s.files.sort()
    return series, unreadable


def _floats(ds, keyword: str, n: int, name: str) -> np.ndarray:
    value = ds.get(keyword)
    if value is None or len(value) != n:
        raise SeriesError(f"{name} has no valid {keyword}; the slice geometry is unknown")
    return np.asarray([float(v) for v in value], dtype=np.float64)


def series_geometry(headers: list, names: list[str], min_slices: int = 3) -> tuple[list[int], np.ndarray]:
    """Check that slices form one regular, untilted stack; returns the slice order and the LPS affine.

    Raises :class:`SeriesError` for too few slices, multi-frame or mixed-size images, mixed orientations or pixel
    spacings, duplicate or missing slices, irregular spacing and gantry tilt.
    """
    n = len(headers)
    if any(int(ds.get("NumberOfFrames", 1) or 1) > 1 for ds in headers):
        raise SeriesError("multi-frame (enhanced) images are not supported; export the series as single slices")
    sizes = {(int(ds.Rows), int(ds.Columns)) for ds in headers}
    if len(sizes) > 1:
        raise SeriesError(f"slices differ in size ({', '.join(f'{r}x{c}' for r, c in sorted(sizes))})")
    iop = np.stack([_floats(ds, "ImageOrientationPatient", 6, nm) for ds, nm in zip(headers, names, strict=True)])
    if np.abs(iop - iop[0]).max() > 1e-3:
        count = len({tuple(np.round(o, 3)) for o in iop})
        raise SeriesError(f"mixed orientations ({count} different ImageOrientationPatient values in one series)")
    pix = np.stack([_floats(ds, "PixelSpacing", 2, nm) for ds, nm in zip(headers, names, strict=True)])
    if np.abs(pix - pix[0]).max() > 1e-4:
        raise SeriesError("mixed pixel spacings in one series")
    if np.any(pix[0] <= 0):
        raise SeriesError(f"invalid PixelSpacing {pix[0].tolist()}")
    if n < min_slices:
        raise SeriesError(f"too few slices ({n}; at least {min_slices} needed)")
    row, col = iop[0, :3], iop[0, 3:]
    row, col = row / np.linalg.norm(row), col / np.linalg.norm(col)
    if abs(float(row @ col)) > 1e-3:
        raise SeriesError("ImageOrientationPatient is not orthogonal")
    normal = np.cross(row, col)
    pos = np.stack([_floats(ds, "ImagePositionPatient", 3, nm) for ds, nm in zip(headers, names, strict=True)])
    dist = pos @ normal
    order = [int(i) for i in np.argsort(dist, kind="stable")]
    gaps = np.diff(dist[order])
    if n == 1:  # a single slice (min_slices=1): thickness from the header
        gaps = np.array([float(headers[0].get("SpacingBetweenSlices") or headers[0].get("SliceThickness") or 1.0)])
    if np.any(gaps < 1e-3):
        k = int(np.argmax(gaps < 1e-3))
        raise SeriesError(f"duplicate slices: {int(np.sum(gaps < 1e-3)) + 1} slices share positions (e.g. "
                          f"{names[order[k]]} and {names[order[k + 1]]} at {dist[order[k]]:.2f} mm)")
    step = float(np.median(gaps))
    if np.abs(gaps - step).max() > max(0.02 * step, 0.01):
        ratio = gaps / step
        big = np.flatnonzero(ratio > 1.5)
        if big.size and np.allclose(ratio[big], np.round(ratio[big]), atol=0.05) and np.all(ratio > 0.98):
            k = int(big[0])
            missing = int(np.round(ratio[big]).sum() - big.size)
            raise SeriesError(f"missing slices: about {missing} missing (gap of {gaps[k]:.2f} mm after slice at "
                              f"{dist[order[k]]:.2f} mm, spacing {step:.2f} mm)")
        raise SeriesError(f"irregular slice spacing ({gaps.min():.3g} to {gaps.max():.3g} mm between slices)")
    span = pos[order[-1]] - pos[order[0]] if n > 1 else normal
    cos = float(np.clip(span @ normal / np.linalg.norm(span), -1.0, 1.0))
    tilt = float(np.degrees(np.arccos(cos)))
    if tilt > 0.05:
        raise SeriesError(f"gantry tilt of {tilt:.2f}° (slices are sheared); resample the series without tilt first")
    affine = np.eye(4)
    affine[:3, 0] = row * pix[0, 1]  # column index moves along the row direction by the column spacing
    affine[:3, 1] = col * pix[0, 0]
    affine[:3, 2] = normal * (float(dist[order[-1]] - dist[order[0]]) / (n - 1) if n > 1 else float(gaps[0]))
    affine[:3, 3] = pos[order[0]]
    return order, affine


def _dedupe(datasets: list, files: list[Path]) -> tuple[list, list[Path]]:
    """Drop copies of the same instance (same SOPInstanceUID), keeping the first file."""
    seen: dict[str, int] = {}
    keep = [i for i, ds in enumerate(datasets) if seen.setdefault(str(ds.get("SOPInstanceUID", i)), i) == i]
    return [datasets[i] for i in keep], [files[i] for i in keep]


def read_dicom_series(files: list[str | Path], min_slices: int = 3, require_ct: bool = True) -> DicomSeries:
    """Read one series (its files in any order) as HU (X, Y, Z) float32 with a RAS affine.

    Raises :class:`SeriesError` with the reason when a file cannot be read or decoded, the series is not CT
    (``require_ct``) or its geometry fails :func:`series_geometry`.
    """
    import pydicom

    files = [Path(f) for f in files]
    datasets = []
    for f in files:
        try:
            datasets.append(pydicom.dcmread(str(f)))
        except Exception as exc:
            raise SeriesError(f"{f.name} cannot be read ({type(exc).__name__}: {exc})") from exc
    datasets, files = _dedupe(datasets, files)
    uids = {str(ds.get("SeriesInstanceUID", "")) for ds in datasets}
    if len(uids) != 1:
        raise SeriesError(f"files belong to {len(uids)} different series")
    modality = {str(ds.get("Modality", "")) for ds in datasets}
    if require_ct and modality != {"CT"}:
        raise SeriesError(f"not CT (Modality {'/'.join(sorted(modality)) or 'missing'})")
    order, lps = series_geometry(datasets, [f.name for f in files], min_slices)
    rows, cols = int(datasets[0].Rows), int(datasets[0].Columns)
    array = np.empty((cols, rows, len(order)), dtype=np.float32)
    for k, i in enumerate(order):
        array[:, :, k] = _hu_plane(datasets[i], files[i], rows, cols).T
    headers = []
    for i in order:  # keep the headers only; the pixel bytes are in `array` now
        ds = datasets[i]
        if "PixelData" in ds:
            del ds.PixelData
        headers.append(ds)
    return DicomSeries(uid=uids.pop(), array=array, affine=_LPS_TO_RAS @ lps, headers=headers,
                       files=[files[i] for i in order])


def _hu_plane(ds, path: Path, rows: int, cols: int) -> np.ndarray:
    """Decode one slice and apply its rescale slope and intercept."""
    if "PixelData" not in ds:
        raise SeriesError(f"{path.name} holds no pixel data")
    if int(ds.get("SamplesPerPixel", 1)) != 1:
        raise SeriesError(f"{path.name} is not a greyscale image (SamplesPerPixel {ds.SamplesPerPixel})")
    syntax = ds.file_meta.get("TransferSyntaxUID", None) if hasattr(ds, "file_meta") else None
    try:
        pixels = ds.pixel_array
    except Exception as exc:
        what = getattr(syntax, "name", str(syntax))
        raise SeriesError(f"{path.name}: pixel data cannot be decoded ({what}; {type(exc).__name__}: {exc})") from exc
    if pixels.shape != (rows, cols):
        raise SeriesError(f"{path.name}: pixel data has shape {pixels.shape}, expected {(rows, cols)}")
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    plane = pixels.astype(np.float32)
    if slope != 1.0:
        plane *= np.float32(slope)
    if intercept != 0.0:
        plane += np.float32(intercept)
    return plane
