"""DICOM as exports and scanners write it, made with pydicom from a plain phantom series: empty UIDs, enhanced
multi-frame CT, a scout in the series, two acquisitions in one series, files without preamble or file meta.
And the independent readers the tests compare with: SimpleITK's series reader and a dcm2niix-style conversion."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEG2000Lossless, generate_uid

LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"


def _j2k(pixels: np.ndarray, bits: int) -> bytes:
    import openjpeg

    return openjpeg.encode(np.ascontiguousarray(pixels), bits_stored=bits)


def _save(ds: Dataset, path: Path, syntax: str = ExplicitVRLittleEndian) -> Path:
    """Save with file meta (pixels given uncompressed); ``syntax`` JPEG 2000 re-encodes them (lossless)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.get("SOPClassUID", "")
    meta.MediaStorageSOPInstanceUID = ds.get("SOPInstanceUID", "")
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    if syntax == JPEG2000Lossless:
        frames = ds.pixel_array.reshape(-1, int(ds.Rows), int(ds.Columns))
        ds.PixelData = encapsulate([_j2k(f, int(ds.BitsStored)) for f in frames])
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
        meta.TransferSyntaxUID = syntax
    ds.is_little_endian, ds.is_implicit_VR = True, syntax == ImplicitVRLittleEndian
    ds.save_as(str(path), write_like_original=False)
    return path


def anonymised(src: list[Path], dst: Path, syntax: str = JPEG2000Lossless) -> list[Path]:
    """As an anonymiser exports: Study-, Series-, SOPInstance- and SOPClassUID present but empty, patient module
    empty, pixels in JPEG 2000."""
    dst.mkdir(parents=True)
    out = []
    for k, f in enumerate(src):
        ds = pydicom.dcmread(f)
        for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID", "PatientName",
                        "PatientID", "PatientBirthDate", "PatientSex", "StudyID", "AccessionNumber"):
            setattr(ds, keyword, "")
        out.append(_save(ds, dst / f"IMG{k:04d}", syntax))
    return out


def enhanced(src: list[Path], path: Path, syntax: str = ExplicitVRLittleEndian, seed: int = 0) -> Path:
    """One Enhanced CT Image (multi-frame) of the slices ``src``, frames in a shuffled order, geometry and rescale in
    the functional groups (orientation and spacing shared, positions per frame)."""
    slices = [pydicom.dcmread(f) for f in src]
    order = np.random.default_rng(seed).permutation(len(slices))
    first = slices[0]
    ds = Dataset()
    for keyword in ("SpecificCharacterSet", "StudyDate", "StudyTime", "AccessionNumber", "Modality", "Manufacturer",
                    "ReferringPhysicianName", "StudyDescription", "SeriesDescription", "PatientName", "PatientID",
                    "PatientBirthDate", "PatientSex", "StudyInstanceUID", "SeriesInstanceUID", "StudyID",
                    "SeriesNumber", "FrameOfReferenceUID", "PositionReferenceIndicator", "SamplesPerPixel",
                    "PhotometricInterpretation", "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit",
                    "PixelRepresentation"):
        if keyword in first:
            setattr(ds, keyword, first[keyword].value)
    ds.SOPClassUID, ds.SOPInstanceUID = ENHANCED_CT, generate_uid(entropy_srcs=[str(path), str(seed)])
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    ds.InstanceNumber, ds.ContentDate, ds.ContentTime = 1, first.StudyDate, first.StudyTime
    ds.AcquisitionNumber, ds.NumberOfFrames = 1, len(slices)
    measures = Dataset()
    measures.PixelSpacing, measures.SliceThickness = first.PixelSpacing, first.SliceThickness
    orientation = Dataset()
    orientation.ImageOrientationPatient = first.ImageOrientationPatient
    rescale = Dataset()
    rescale.RescaleIntercept, rescale.RescaleSlope, rescale.RescaleType = first.RescaleIntercept, 1, "HU"
    shared = Dataset()
    shared.PixelMeasuresSequence, shared.PlaneOrientationSequence = [measures], [orientation]
    shared.PixelValueTransformationSequence = [rescale]
    ds.SharedFunctionalGroupsSequence = [shared]
    per_frame = []
    for k in order:
        position, content = Dataset(), Dataset()
        position.ImagePositionPatient = slices[k].ImagePositionPatient
        content.FrameAcquisitionNumber, content.StackID, content.InStackPositionNumber = 1, "1", int(k) + 1
        item = Dataset()
        item.PlanePositionSequence, item.FrameContentSequence = [position], [content]
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = per_frame
    ds.PixelData = np.stack([slices[k].pixel_array for k in order]).tobytes()
    return _save(ds, path, syntax)


def add_scout(src: list[Path], path: Path, same_series: bool = True) -> Path:
    """A localizer (ImageType LOCALIZER, coronal, another size) beside the series, in it or as a series of its own."""
    ds = pydicom.dcmread(src[0])
    dtype = ds.pixel_array.dtype
    ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    ds.Rows, ds.Columns = 24, int(ds.Columns)
    ds.PixelData = np.full((24, int(ds.Columns)), 1000, dtype=dtype).tobytes()
    ds.SOPInstanceUID = generate_uid(entropy_srcs=[str(path)])
    if not same_series:
        ds.SeriesInstanceUID, ds.SeriesNumber = generate_uid(entropy_srcs=[str(path), "series"]), 99
    ds.AcquisitionNumber = 0
    return _save(ds, path)


def second_acquisition(src: list[Path], dst: Path, hu: int = 200) -> list[Path]:
    """The same positions again as AcquisitionNumber 2 (``hu`` brighter, a contrast phase), in the same series and
    folder; every other slice stored with slope 2 (per-slice rescale)."""
    out = []
    for k, f in enumerate(src):
        ds = pydicom.dcmread(f)
        ds.AcquisitionNumber = 2
        ds.SOPInstanceUID = generate_uid(entropy_srcs=[str(f), "acquisition 2"])
        hu2 = ds.pixel_array.astype(np.int32) - 1024 + hu  # the source: intercept -1024, slope 1
        if k % 2:
            ds.RescaleSlope = 2
        ds.PixelData = ((hu2 + 1024) // int(ds.RescaleSlope)).astype(np.uint16).tobytes()
        out.append(_save(ds, dst / f"ACQ2_{k:04d}.dcm"))
    return out


def without_file_meta(src: list[Path], dst: Path) -> list[Path]:
    """Implicit VR little endian data sets with neither the 128-byte preamble nor file meta (old exports)."""
    from pydicom.filewriter import write_dataset

    dst.mkdir(parents=True)
    out = []
    for k, f in enumerate(src):
        ds = pydicom.dcmread(f)
        ds.is_little_endian, ds.is_implicit_VR = True, True
        buffer = io.BytesIO()
        write_dataset(pydicom.filebase.DicomFileLike(buffer), ds)
        (dst / f"{k:05d}").write_bytes(buffer.getvalue())
        out.append(dst / f"{k:05d}")
    return out


def sitk_read(files: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """SimpleITK (GDCM) reading of ``files`` in GDCM's own slice order: (X, Y, Z) array and RAS affine."""
    reader = sitk.ImageSeriesReader()
    folder = str(files[0].parent)
    uid = pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID
    names = [n for n in reader.GetGDCMSeriesFileNames(folder, uid) if Path(n) in set(files)]
    reader.SetFileNames(names)
    img = reader.Execute()
    lps = np.eye(4)
    lps[:3, :3] = np.asarray(img.GetDirection()).reshape(3, 3) * np.asarray(img.GetSpacing())
    lps[:3, 3] = img.GetOrigin()
    return np.transpose(sitk.GetArrayFromImage(img), (2, 1, 0)), LPS @ lps


def dcm2niix_style(files: list[Path]) -> tuple[tuple[int, int, int], np.ndarray]:
    """Shape and RAS affine as dcm2niix derives them from the headers alone (for files GDCM would not group):
    slices sorted along the normal of ImageOrientationPatient, origin at the first, spacing from the positions."""
    hs = [pydicom.dcmread(f, stop_before_pixels=True, force=True) for f in files]
    iop = np.asarray(hs[0].ImageOrientationPatient, float)
    normal = np.cross(iop[:3], iop[3:])
    hs.sort(key=lambda h: float(np.asarray(h.ImagePositionPatient, float) @ normal))
    first, last = (np.asarray(h.ImagePositionPatient, float) for h in (hs[0], hs[-1]))
    dy, dx = (float(v) for v in hs[0].PixelSpacing)
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1] = iop[:3] * dx, iop[3:] * dy
    lps[:3, 2], lps[:3, 3] = (last - first) / (len(hs) - 1), first
    return (int(hs[0].Columns), int(hs[0].Rows), len(hs)), LPS @ lps
