"""Reading DICOM headers as exports come (also without preamble or file meta) and telling which files form a series.

A series is its SeriesInstanceUID. Anonymisers and research exports often leave that UID empty; such files are
grouped by what still identifies a stack: their folder, study and frame of reference (where present), modality,
series number and description, image size, orientation and pixel spacing. That group gets a stable key
(``nouid-`` and a hash of those values), since the report has no UID to name it by.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from pathlib import Path

import numpy as np

__all__ = ["dcmread", "geometry_of", "group_key", "is_localizer", "orientation_differs", "valid_uid"]

_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
_VR = re.compile(rb"[A-Z]{2}")


def valid_uid(value) -> bool:
    """A DICOM UID: digits and dots, at most 64 characters (what a SEG can reference)."""
    text = str(value or "").strip()
    return bool(_UID.fullmatch(text)) and len(text) <= 64


def _raw_dataset(path: Path) -> bool:
    """Whether the file starts like a DICOM data set written without preamble (group 0002 or 0008 first)."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return False
    if len(head) < 8:
        return False
    group, element = struct.unpack("<HH", head[:4])
    if group not in (0x0002, 0x0008) or element > 0x0100:
        return False
    # explicit VR (two capital letters) or implicit VR (a 4-byte length that fits a header value)
    return bool(_VR.fullmatch(head[4:6])) or struct.unpack("<I", head[4:8])[0] < 1 << 20


def dcmread(path: str | Path, stop_before_pixels: bool = False):
    """pydicom's ``dcmread``, also for files without the 128-byte preamble and file meta (old exports).

    Returns None when the file is not DICOM; a damaged DICOM file raises pydicom's error.
    """
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.errors import InvalidDicomError
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    path = Path(path)
    try:
        return pydicom.dcmread(str(path), stop_before_pixels=stop_before_pixels)
    except InvalidDicomError:
        if not _raw_dataset(path):
            return None
    ds = pydicom.dcmread(str(path), stop_before_pixels=stop_before_pixels, force=True)
    if "Rows" not in ds and "SeriesInstanceUID" not in ds and "SOPClassUID" not in ds:
        return None  # bytes that merely looked like a data set
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        # without file meta the syntax is what pydicom found while parsing (such files are never compressed)
        ds.file_meta = meta if meta is not None else FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = (ImplicitVRLittleEndian if ds.is_implicit_VR else
                                          ExplicitVRLittleEndian if ds.is_little_endian else ExplicitVRBigEndian)
    return ds


def is_localizer(ds) -> bool:
    """A localizer (scout, topogram) image: ImageType (or an enhanced frame's FrameType) says LOCALIZER."""
    values = ds.get("ImageType") or ds.get("FrameType") or []
    if isinstance(values, str):
        values = values.split("\\")
    return any(str(v).strip().upper() == "LOCALIZER" for v in values)


def _functional(ds, keyword: str):
    """The first item of ``keyword`` in the shared functional groups, else in the first frame's."""
    for groups in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        seq = ds.get(groups)
        if seq and keyword in seq[0] and len(seq[0][keyword].value):
            return seq[0][keyword][0]
    return None


def geometry_of(ds) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(ImageOrientationPatient, PixelSpacing) of an image, or of an enhanced image's (first) frame; () if absent."""
    orientation, spacing = ds.get("ImageOrientationPatient"), ds.get("PixelSpacing")
    if orientation is None and (item := _functional(ds, "PlaneOrientationSequence")) is not None:
        orientation = item.get("ImageOrientationPatient")
    if spacing is None and (item := _functional(ds, "PixelMeasuresSequence")) is not None:
        spacing = item.get("PixelSpacing")
    try:
        return tuple(float(v) for v in orientation or ()), tuple(float(v) for v in spacing or ())
    except (TypeError, ValueError):
        return (), ()


def group_key(ds, folder: str) -> tuple[str, bool]:
    """(key, has a SeriesInstanceUID): the UID itself, or ``nouid-<hash>`` of what identifies the stack."""
    uid = str(ds.get("SeriesInstanceUID", "") or "").strip()
    if uid:
        return uid, True
    orientation, spacing = geometry_of(ds)
    identity = {
        "folder": folder, "study": str(ds.get("StudyInstanceUID", "") or ""),
        "frame_of_reference": str(ds.get("FrameOfReferenceUID", "") or ""), "modality": str(ds.get("Modality", "")),
        "series_number": str(ds.get("SeriesNumber", "") or ""), "description": str(ds.get("SeriesDescription", "")),
        "size": [int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)],
        # rounded so that print noise in the header does not split a stack
        "orientation": [round(v, 3) + 0.0 for v in orientation], "spacing": [round(v, 4) for v in spacing],
    }
    digest = hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]
    return f"nouid-{digest}", False


def orientation_differs(a, b) -> bool:
    """Whether two headers' image orientations differ (beyond print noise)."""
    oa, ob = geometry_of(a)[0], geometry_of(b)[0]
    return len(oa) == 6 and len(ob) == 6 and float(np.abs(np.subtract(oa, ob)).max()) > 1e-3
