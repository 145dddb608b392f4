"""Write a 3-D CT volume (Hounsfield units, RAS affine as nibabel gives it) as a DICOM CT Image series.

One file per slice of the volume's third axis: CT Image Storage, Explicit VR Little Endian with file meta,
geometry in the DICOM patient frame (LPS), stored pixels = HU + 1024 with RescaleIntercept -1024 / slope 1.
UIDs come from :func:`pydicom.uid.generate_uid` with entropy from ``seed`` and the patient/series ids, so the
same call writes byte-identical files.

Geometry: the NIfTI affine maps voxel (i, j, k) to RAS mm; DICOM positions are LPS, so x and y change sign.
In a DICOM image the column index moves along ImageOrientationPatient[0:3] (the row direction) by
PixelSpacing[1] and the row index along ImageOrientationPatient[3:6] by PixelSpacing[0]; the pixel array
(Rows, Columns) of slice k is therefore ``image[:, :, k].T`` (rows = j, columns = i). With
``radiological=True`` (default) an in-plane axis is reversed when its LPS direction points to a negative
coordinate, so an axial RAS volume gets the usual ImageOrientationPatient 1\\0\\0\\0\\1\\0 (patient right on
the viewer's left, anterior up, as scanners write it); the voxels keep their world positions either way.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from arena_seg.data.orientation import ras_to_lps

__all__ = ["write_dicom_series"]

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def _ds(v: float) -> str:
    """A DICOM DS string (<= 16 characters) with as much precision as fits."""
    from pydicom.valuerep import format_number_as_ds

    v = float(v)
    if abs(v) < 1e-9:
        v = 0.0
    return format_number_as_ds(v)


def write_dicom_series(image_hu: np.ndarray, affine: np.ndarray, out_dir: str | Path, patient_id: str = "ANON",
                       series_description: str = "synthetic CT", seed: int = 0, *,
                       patient_name: str | None = None, study_description: str = "arena-seg phantom",
                       study_instance_uid: str | None = None, series_instance_uid: str | None = None,
                       frame_of_reference_uid: str | None = None, series_number: int = 1,
                       study_date: str = "20240101", study_time: str = "120000",
                       radiological: bool = True) -> list[Path]:
    """Write ``image_hu`` ((X, Y, Z) HU, integer) with RAS ``affine`` as a CT series; returns the file paths.

    ``out_dir`` is created; files are ``CT_0001.dcm``, ... in slice order (InstanceNumber 1..Z).
    UIDs not given are derived deterministically from ``seed``, ``patient_id`` and ``series_number``.
    Raises ValueError for a non-3-D image, a sheared/degenerate affine, or HU that cannot be stored.
    """
    from pydicom.uid import generate_uid

    image = _integer_image(image_hu)
    geometry = _Geometry.of(affine, image.shape, radiological)
    stored_dtype, pixel_rep = _stored_format(image)
    uid_seed = [str(int(seed)), str(patient_id)]
    series = _Series(
        study_uid=study_instance_uid or generate_uid(entropy_srcs=["study", *uid_seed]),
        series_uid=series_instance_uid or generate_uid(entropy_srcs=["series", *uid_seed, str(series_number)]),
        for_uid=frame_of_reference_uid or generate_uid(entropy_srcs=["frame-of-reference", *uid_seed]),
        date=_dt.date(int(study_date[:4]), int(study_date[4:6]), int(study_date[6:8])).strftime("%Y%m%d"),
        time=study_time, study_description=study_description, series_description=series_description,
        patient_name=patient_name if patient_name is not None else str(patient_id), patient_id=str(patient_id),
        series_number=int(series_number), pixel_rep=pixel_rep,
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(image.shape[2]):
        path = out_dir / f"CT_{k + 1:04d}.dcm"
        ds = _slice_dataset(path, series, geometry, k)
        ds.PixelData = _plane_bytes(image, k, geometry.flip, stored_dtype)
        ds.save_as(str(path), write_like_original=False)
        paths.append(path)
    return paths


def _integer_image(image_hu: np.ndarray) -> np.ndarray:
    """The image as integers (whole-number floats rounded); ValueError when it is not 3-D or not whole."""
    image = np.asarray(image_hu)
    if image.ndim != 3:
        raise ValueError(f"image must be 3-D (X, Y, Z), got shape {image.shape}")
    if not np.issubdtype(image.dtype, np.integer):
        if not np.allclose(image, np.round(image)):
            raise ValueError("image must hold integer HU values")
        image = np.round(image)
    return image


def _stored_format(image: np.ndarray) -> tuple[np.dtype, int]:
    """Stored pixel dtype and PixelRepresentation for HU + 1024 (unsigned when it fits, else signed)."""
    lo, hi = int(image.min()), int(image.max())
    if lo >= -1024 and hi <= 65535 - 1024:
        return np.dtype("<u2"), 0
    if lo >= -32768 + 1024 and hi <= 32767 - 1024:
        return np.dtype("<i2"), 1
    raise ValueError(f"HU range [{lo}, {hi}] cannot be stored in 16 bits with RescaleIntercept -1024")


@dataclass(frozen=True)
class _Geometry:
    """Slice geometry in LPS: spacing, axis directions, the first slice's corner and in-plane reversals."""

    spacing: np.ndarray  # mm along i, j, k
    dirs: np.ndarray  # unit LPS directions of the i, j, k axes (columns)
    first: np.ndarray  # LPS position of the first stored pixel of slice 0
    normal: np.ndarray  # row direction × column direction
    iop: list[str]  # ImageOrientationPatient
    flip: tuple[bool, bool]  # i, j reversed in the stored plane
    rows: int  # along j
    columns: int  # along i

    @classmethod
    def of(cls, affine: np.ndarray, shape: tuple[int, ...], radiological: bool) -> _Geometry:
        affine = np.asarray(affine, dtype=np.float64)
        if affine.shape != (4, 4):
            raise ValueError(f"affine must be 4x4, got {affine.shape}")
        cols = affine[:3, :3]
        spacing = np.linalg.norm(cols, axis=0)
        if np.any(spacing <= 0):
            raise ValueError("affine has a zero-length axis")
        lps = ras_to_lps(affine)
        dirs = lps[:3, :3] / spacing
        gram = dirs.T @ dirs
        if np.abs(gram - np.eye(3)).max() > 1e-4:
            raise ValueError("affine axes are not orthogonal (sheared); DICOM slices cannot describe it")
        # in-plane axis reversal for the usual display orientation (voxel positions unchanged)
        flip = [False, False]
        if radiological:
            for a in (0, 1):
                d = dirs[:, a]
                flip[a] = bool(d[np.argmax(np.abs(d))] < 0)
        nx, ny, _ = shape
        start = np.array([nx - 1 if flip[0] else 0, ny - 1 if flip[1] else 0, 0], dtype=np.float64)
        row_dir = -dirs[:, 0] if flip[0] else dirs[:, 0]  # direction of increasing column index
        col_dir = -dirs[:, 1] if flip[1] else dirs[:, 1]  # direction of increasing row index
        return cls(spacing=spacing, dirs=dirs, first=lps[:3, 3] + lps[:3, :3] @ start,
                   normal=np.cross(row_dir, col_dir), iop=[_ds(v) for v in (*row_dir, *col_dir)],
                   flip=(flip[0], flip[1]), rows=ny, columns=nx)


@dataclass(frozen=True)
class _Series:
    """What every slice of the series shares: UIDs, dates, descriptions, patient and pixel representation."""

    study_uid: str
    series_uid: str
    for_uid: str
    date: str
    time: str
    study_description: str
    series_description: str
    patient_name: str
    patient_id: str
    series_number: int
    pixel_rep: int


def _slice_dataset(path: Path, series: _Series, geometry: _Geometry, k: int):
    """The CT Image dataset of slice ``k`` (all but its pixels), with file meta, Explicit VR Little Endian."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

    sop_uid = generate_uid(entropy_srcs=["sop", series.series_uid, str(k)])
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "ARENA_SEG_0_1"
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.is_little_endian = True
    ds.is_implicit_VR = False
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.SOPInstanceUID = sop_uid
    _set_study_tags(ds, series)
    _set_plane_tags(ds, series, geometry, k)
    return ds


def _set_study_tags(ds, series: _Series) -> None:
    """Patient, study, series and acquisition tags (the same on every slice)."""
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = series.date
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = series.time
    ds.AccessionNumber = ""
    ds.Modality = "CT"
    ds.Manufacturer = "arena-seg (synthetic phantom)"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = series.study_description
    ds.SeriesDescription = series.series_description
    ds.PatientName = series.patient_name
    ds.PatientID = series.patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.BodyPartExamined = "ABDOMEN"
    ds.KVP = "120"
    ds.ConvolutionKernel = "STANDARD"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = series.study_uid
    ds.SeriesInstanceUID = series.series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = series.series_number
    ds.AcquisitionNumber = 1
    ds.FrameOfReferenceUID = series.for_uid
    ds.PositionReferenceIndicator = ""


def _set_plane_tags(ds, series: _Series, geometry: _Geometry, k: int) -> None:
    """Position, orientation, spacing and pixel description of slice ``k``."""
    spacing = geometry.spacing
    ds.SliceThickness = _ds(spacing[2])
    ds.SpacingBetweenSlices = _ds(spacing[2])
    ds.InstanceNumber = k + 1
    pos = geometry.first + k * spacing[2] * geometry.dirs[:, 2]
    ds.ImagePositionPatient = [_ds(v) for v in pos]
    ds.ImageOrientationPatient = geometry.iop
    ds.SliceLocation = _ds(float(pos @ geometry.normal))
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = geometry.rows
    ds.Columns = geometry.columns
    ds.PixelSpacing = [_ds(spacing[1]), _ds(spacing[0])]  # row spacing (along j), column spacing (along i)
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = series.pixel_rep
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"


def _plane_bytes(image: np.ndarray, k: int, flip: tuple[bool, bool], stored_dtype: np.dtype) -> bytes:
    """Stored pixels (HU + 1024) of slice ``k``: rows = j, columns = i, in-plane reversals applied."""
    plane = image[:, :, k].T  # (rows = j, columns = i)
    if flip[0]:
        plane = plane[:, ::-1]
    if flip[1]:
        plane = plane[::-1, :]
    return np.ascontiguousarray((plane.astype(np.int32) + 1024).astype(stored_dtype)).tobytes()
