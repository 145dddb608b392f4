"""Find DICOM series under a folder, check that their geometry can be trusted, and read them as CT volumes.

A volume comes back as float32 HU indexed (X, Y, Z) = (column, row, slice) with a RAS affine, as nibabel (and
SimpleITK's series reader, after LPS → RAS) would describe the same series: slices sorted by their position
along the slice normal, origin at the first slice, spacing between slices taken from the positions. Compressed
transfer syntaxes decode through pydicom's handlers (pylibjpeg: JPEG 2000, JPEG-LS, JPEG lossless; RLE).
Exports as they come are read too: series without UIDs (:mod:`~arena_seg.data.dicom_group`), enhanced
multi-frame CT (:mod:`~arena_seg.data.dicom_multiframe`), files without preamble or file meta, and series mixed
with localizers, copies or a second acquisition (:mod:`~arena_seg.data.dicom_stack`); what was left out is
said in :attr:`DicomSeries.notes`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from arena_seg.data.dicom_errors import SeriesError
from arena_seg.data.dicom_geometry import series_geometry
from arena_seg.data.dicom_group import dcmread, group_key, is_localizer, orientation_differs
from arena_seg.data.dicom_multiframe import frame_headers, is_multiframe
from arena_seg.data.orientation import lps_to_ras

__all__ = ["DicomSeries", "SeriesError", "SeriesFiles", "find_dicom_series", "read_dicom_series", "series_geometry"]

_NON_IMAGE_MODALITIES = {"SEG", "SR", "RTSTRUCT", "RTPLAN", "RTDOSE", "PR", "KO", "DOC"}


@dataclass
class SeriesFiles:
    """The files of one series, found anywhere under the searched folder.

    ``uid`` is the SeriesInstanceUID ("" when the files have none); ``key`` names the series either way (the UID,
    or ``nouid-<hash>``); ``notes`` say how it was grouped; ``skip`` says why it is no volume (localizers only).
    """

    uid: str
    files: list[Path]
    modality: str = ""
    description: str = ""
    key: str = ""
    notes: list[str] = field(default_factory=list)
    skip: str = ""
    localizers: int = 0

    @property
    def folder(self) -> Path:
        """The deepest folder holding every file of the series."""
        return Path(os.path.commonpath([str(f.parent) for f in self.files]))


@dataclass
class DicomSeries:
    """A read series: HU volume (X, Y, Z), RAS affine, and the headers (no pixels) in slice order.

    For a multi-frame image ``headers`` are per-frame headers (:func:`~arena_seg.data.dicom_multiframe.
    frame_headers`), ``sources`` the image's data set and ``frames`` the frame number of each slice; for single
    images ``sources`` are ``headers`` and ``frames`` is None. ``notes`` say what was left out, and why.
    """

    uid: str
    array: np.ndarray
    affine: np.ndarray
    headers: list = field(repr=False)
    files: list[Path] = field(repr=False)
    sources: list = field(default_factory=list, repr=False)
    frames: list[int | None] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def spacing(self) -> tuple[float, float, float]:
        return tuple(float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))


def find_dicom_series(root: str | Path, exclude: tuple[str | Path, ...] = ()
                      ) -> tuple[list[SeriesFiles], list[tuple[Path, str]]]:
    """Group the DICOM image files under ``root`` into series, whatever their names.

    A series is its SeriesInstanceUID, or, where that is empty, its folder and stack identity
    (:func:`~arena_seg.data.dicom_group.group_key`). Returns the series (sorted by key, files sorted) and the
    files that look like DICOM but whose header cannot be read, with the reason. Folders in ``exclude`` (e.g.
    the output folder) are not searched. A series of localizers only, or of one image in another orientation
    than a series beside it (a scout), gets ``skip`` set.
    """
    root = Path(root)
    skip = {Path(e).resolve() for e in exclude}
    groups: dict[str, SeriesFiles] = {}
    firsts: dict[str, object] = {}  # the first header of each series
    unreadable: list[tuple[Path, str]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and (Path(dirpath) / d).resolve() not in skip)
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if name.startswith(".") or name.endswith((".nii", ".nii.gz", ".json", ".txt")):
                continue
            try:
                ds = dcmread(path, stop_before_pixels=True)
            except Exception as exc:  # a DICOM file whose header is damaged
                unreadable.append((path, f"{type(exc).__name__}: {exc}"))
                continue
            if ds is None:
                continue  # not DICOM
            if "Rows" not in ds:
                sop = getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", None)
                if sop is not None and "Image Storage" in getattr(sop, "name", ""):
                    unreadable.append((path, f"{sop.name} file with an incomplete header (truncated?)"))
                continue  # a DICOMDIR or another non-image object
            if str(ds.get("Modality", "")).upper() in _NON_IMAGE_MODALITIES:
                continue
            key, has_uid = group_key(ds, Path(dirpath).relative_to(root).as_posix())
            entry = groups.get(key)
            if entry is None:
                entry = groups[key] = SeriesFiles(key if has_uid else "", [], str(ds.get("Modality", "")),
                                                  str(ds.get("SeriesDescription", "")), key=key)
                firsts[key] = ds
                if not has_uid:
                    entry.notes.append(f"no SeriesInstanceUID: grouped by folder, frame of reference, series "
                                       f"number and description, image size, orientation and pixel spacing "
                                       f"(series key {key})")
            entry.files.append(path)
            entry.localizers += is_localizer(ds)
    series = [groups[key] for key in sorted(groups)]
    for s in series:
        s.files.sort()
        if s.localizers == len(s.files):
            s.skip = "localizer (scout) images only, not a volume"
    for s in series:  # a lone image beside a series of another orientation in its folder: a scout
        if len(s.files) == 1 and not s.skip and not is_multiframe(firsts[s.key]) and any(
                o is not s and o.folder == s.folder and len(o.files) > 1
                and orientation_differs(firsts[o.key], firsts[s.key]) for o in series):
            s.skip = "one image in another orientation than the series beside it (a scout), not a volume"
    return series, unreadable


def read_dicom_series(files: list[str | Path], min_slices: int = 3, require_ct: bool = True) -> DicomSeries:
    """Read one series (its files in any order) as HU (X, Y, Z) float32 with a RAS affine.

    Localizers, stray images of another orientation, copies and extra acquisitions are left out
    (:func:`~arena_seg.data.dicom_stack.choose_stack`, with notes). Raises :class:`SeriesError` with the reason
    when a file cannot be read or decoded, the series is not CT (``require_ct``) or no stack of its images passes
    :func:`series_geometry`.
    """
    from arena_seg.data.dicom_stack import choose_stack

    files = [Path(f) for f in files]
    datasets = []
    for f in files:
        try:
            ds = dcmread(f)
        except Exception as exc:
            raise SeriesError(f"{f.name} cannot be read ({type(exc).__name__}: {exc})") from exc
        if ds is None:
            raise SeriesError(f"{f.name} is not a DICOM file")
        datasets.append(ds)
    # one entry per image: (header, source data set index, frame number or None)
    images: list[tuple[object, int, int | None]] = []
    for si, ds in enumerate(datasets):
        if is_multiframe(ds):
            images += [(h, si, k) for k, h in enumerate(frame_headers(ds, files[si].name), start=1)]
        else:
            images.append((ds, si, None))
    headers = [h for h, _, _ in images]
    names = [files[si].name if k is None else f"{files[si].name} frame {k}" for _, si, k in images]
    uids = {str(h.get("SeriesInstanceUID", "") or "").strip() for h in headers}
    if len(uids) != 1:
        raise SeriesError(f"files belong to {len(uids)} different series")
    modality = {str(h.get("Modality", "")) for h in headers}
    if require_ct and modality != {"CT"}:
        raise SeriesError(f"not CT (Modality {'/'.join(sorted(modality)) or 'missing'})")

    decoded: dict[int, np.ndarray] = {}  # multi-frame pixel arrays, decoded once
    cache: dict[int, np.ndarray] = {}  # HU planes decoded so far (copies are compared before the stack is read)

    def plane(i: int) -> np.ndarray:
        if i not in cache:
            header, si, frame = images[i]
            if frame is None:
                cache[i] = _hu_plane(header, files[si])
            else:
                if si not in decoded:
                    decoded[si] = _pixels(datasets[si], files[si], int(datasets[si].get("NumberOfFrames", 1) or 1))
                cache[i] = _rescale(decoded[si][frame - 1], header)
        return cache[i]

    chosen, order, lps, notes = choose_stack(headers, names, plane, series_geometry, min_slices)
    slices = [chosen[k] for k in order]
    rows, cols = int(headers[slices[0]].Rows), int(headers[slices[0]].Columns)
    array = np.empty((cols, rows, len(slices)), dtype=np.float32)
    for k, i in enumerate(slices):
        array[:, :, k] = plane(i).T
        cache.pop(i, None)
    for ds in datasets:  # keep the headers only; the pixel bytes are in `array` now
        if "PixelData" in ds:
            del ds.PixelData
    used = list(dict.fromkeys(images[i][1] for i in slices))  # source data sets in slice order
    frames = [images[i][2] for i in slices]
    return DicomSeries(uid=uids.pop(), array=array, affine=lps_to_ras(lps), headers=[headers[i] for i in slices],
                       files=[files[images[i][1]] for i in slices], sources=[datasets[si] for si in used],
                       frames=None if all(f is None for f in frames) else frames, notes=notes)


def _pixels(ds, path: Path, frames: int) -> np.ndarray:
    """The stored pixels of a data set, (rows, columns) or (frames, rows, columns); a clear error if undecodable."""
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
    expected = (int(ds.Rows), int(ds.Columns)) if frames == 1 else (frames, int(ds.Rows), int(ds.Columns))
    if pixels.shape != expected:
        raise SeriesError(f"{path.name}: pixel data has shape {pixels.shape}, expected {expected}")
    return pixels


def _rescale(pixels: np.ndarray, header) -> np.ndarray:
    """Stored values to HU with the image's (or frame's) own RescaleSlope and RescaleIntercept."""
    slope = float(header.get("RescaleSlope", 1) or 1)
    intercept = float(header.get("RescaleIntercept", 0) or 0)
    plane = pixels.astype(np.float32)
    if slope != 1.0:
        plane *= np.float32(slope)
    if intercept != 0.0:
        plane += np.float32(intercept)
    return plane


def _hu_plane(ds, path: Path) -> np.ndarray:
    """Decode one single-frame image and apply its rescale slope and intercept."""
    return _rescale(_pixels(ds, path, 1), ds)
