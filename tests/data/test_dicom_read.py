"""DICOM series discovery, geometry checks and reading (plain and compressed) against SimpleITK and pydicom data."""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.data import get_testdata_file

from arena_seg.data.dicom_read import SeriesError, find_dicom_series, read_dicom_series
from arena_seg.data.dicom_write import write_dicom_series
from arena_seg.data.phantoms import make_phantom

LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
PYDICOM_DATA = Path(get_testdata_file("CT_small.dcm")).parent
DICOMDIR_TESTS = PYDICOM_DATA / "dicomdirtests"


def sitk_series(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """SimpleITK's (GDCM's) reading of the one series in ``folder``: (X, Y, Z) array and RAS affine."""
    reader = sitk.ImageSeriesReader()
    (uid,) = reader.GetGDCMSeriesIDs(str(folder))
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder), uid))
    img = reader.Execute()
    lps = np.eye(4)
    lps[:3, :3] = np.asarray(img.GetDirection()).reshape(3, 3) * np.asarray(img.GetSpacing())
    lps[:3, 3] = img.GetOrigin()
    return np.transpose(sitk.GetArrayFromImage(img), (2, 1, 0)), LPS @ lps


def recompress(src: Path, dst: Path, syntax: str) -> None:
    """Re-encode every file of a series with RLE, JPEG 2000 or JPEG-LS (all lossless)."""
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless

    dst.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.iterdir()):
        ds = pydicom.dcmread(f)
        if syntax == "rle":
            ds.compress(RLELossless)
        else:
            pixels = ds.pixel_array
            if syntax == "j2k":
                import openjpeg

                frame, uid = openjpeg.encode(pixels, bits_stored=int(ds.BitsStored)), JPEG2000Lossless
            else:
                import pillow_jpls  # noqa: F401  (registers the JPEG-LS writer with Pillow)
                from PIL import Image

                buf = io.BytesIO()
                Image.fromarray(pixels).save(buf, format="JPEG-LS")
                frame, uid = buf.getvalue(), JPEGLSLossless
            ds.PixelData = encapsulate([frame])
            ds["PixelData"].VR = "OB"
            ds["PixelData"].is_undefined_length = True
            ds.file_meta.TransferSyntaxUID = uid
        ds.save_as(dst / f.name)


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(7, spacing=(7.0, 6.0, 8.0))  # unequal spacings catch row/column mix-ups


@pytest.fixture(scope="module")
def series_dir(phantom, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("series") / "ct"
    write_dicom_series(phantom.image, phantom.affine, out, patient_id="R7", seed=7)
    return out


def test_geometry_and_voxels_match_simpleitk(series_dir):
    series, unreadable = find_dicom_series(series_dir.parent)
    assert len(series) == 1 and not unreadable
    vol = read_dicom_series(series[0].files)
    arr, affine = sitk_series(series_dir)
    assert vol.array.shape == arr.shape
    np.testing.assert_allclose(vol.affine, affine, atol=1e-4)
    np.testing.assert_array_equal(vol.array, arr.astype(np.float32))
    assert [h.SOPInstanceUID for h in vol.headers] == [pydicom.dcmread(f).SOPInstanceUID for f in vol.files]


def test_same_world_voxels_as_the_source_volume(phantom, series_dir):
    vol = read_dicom_series(sorted(series_dir.iterdir()))
    m = np.round(np.linalg.inv(vol.affine) @ phantom.affine).astype(int)  # source index -> read index
    idx = np.indices(phantom.image.shape).reshape(3, -1)
    read_idx = m[:3, :3] @ idx + m[:3, 3:4]
    np.testing.assert_array_equal(vol.array[tuple(read_idx)], phantom.image[tuple(idx)])


def test_series_are_grouped_by_uid_whatever_the_file_names(series_dir, tmp_path, phantom):
    mixed = tmp_path / "export"
    (mixed / "a" / "b").mkdir(parents=True)
    for i, f in enumerate(sorted(series_dir.iterdir())[::-1]):  # shuffled names, two folders, no suffix
        shutil.copy(f, (mixed / "a" if i % 2 else mixed / "a" / "b") / f"IM{i * 7 % 13:02d}_{i}")
    write_dicom_series(phantom.image[:, :, :6], phantom.affine, mixed / "a" / "b", patient_id="other", seed=1)
    (mixed / "notes.txt").write_text("not dicom")
    (mixed / "junk.bin").write_bytes(b"\x00" * 300)
    series, unreadable = find_dicom_series(mixed)
    assert sorted(len(s.files) for s in series) == [6, phantom.image.shape[2]] and not unreadable
    big = max(series, key=lambda s: len(s.files))
    assert big.folder == mixed / "a"
    np.testing.assert_array_equal(read_dicom_series(big.files).array, read_dicom_series(
        sorted(series_dir.iterdir())).array)


def test_pydicom_bundled_ct_series_matches_simpleitk():
    folder = DICOMDIR_TESTS / "98892001" / "CT5N"  # 5 slices stored in descending order
    vol = read_dicom_series(sorted(folder.iterdir()))
    arr, affine = sitk_series(folder)
    np.testing.assert_allclose(vol.affine, affine, atol=1e-4)
    np.testing.assert_array_equal(vol.array, arr.astype(np.float32))
    assert vol.array.min() < -500  # rescale intercept -1024 applied


@pytest.mark.parametrize(("folder", "reason"), [
    ("77654033/CT2", "missing slices"),
    ("98892001/CT2N", "localizer (scout) images only"),
    ("98892003/MR1", "not CT (Modality MR)"),
])
def test_pydicom_bundled_series_that_cannot_be_trusted(folder, reason):
    series, _ = find_dicom_series(DICOMDIR_TESTS / folder)
    with pytest.raises(SeriesError, match=re.escape(reason)):
        read_dicom_series(series[0].files)


def _edit(files: list[Path], out: Path, change) -> list[Path]:
    out.mkdir()
    paths = []
    for k, f in enumerate(files):
        ds = pydicom.dcmread(f)
        if change(k, ds) is not False:
            ds.save_as(out / f.name)
            paths.append(out / f.name)
    return paths


@pytest.mark.parametrize(("change", "reason"), [
    (lambda k, ds: k != 4, "missing slices"),
    (lambda k, ds: setattr(ds, "ImagePositionPatient", [float(v) + (3.0 if k > 4 else 0.0) * (i == 2)
                                                         for i, v in enumerate(ds.ImagePositionPatient)]),
     "irregular slice spacing"),
    (lambda k, ds: setattr(ds, "ImagePositionPatient", [float(v) + 0.5 * k * (i == 1)
                                                         for i, v in enumerate(ds.ImagePositionPatient)]),
     "gantry tilt"),
    (lambda k, ds: k < 8 and (setattr(ds, "ImageOrientationPatient", [0, 1, 0, 0, 0, -1]) if k % 2 else None),
     "mixed orientations"),  # two stacks of 4: neither can be taken for the series
    (lambda k, ds: setattr(ds, "SOPInstanceUID", pydicom.uid.generate_uid()) if k == 3 else None, None),
    (lambda k, ds: k < 2, "too few slices"),
])
def test_geometry_checks(series_dir, tmp_path, change, reason):
    files = sorted(series_dir.iterdir())
    paths = _edit(files, tmp_path / "edited", change)
    if reason is None:  # another image (other pixels, new instance UID) at the position of slice 3
        paths.append(tmp_path / "edited" / "copy.dcm")
        ds = pydicom.dcmread(paths[3])
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.PixelData = (ds.pixel_array + 1).astype(ds.pixel_array.dtype).tobytes()
        ds.save_as(paths[-1])
        reason = "duplicate slices"
    with pytest.raises(SeriesError, match=reason):
        read_dicom_series(paths)


def test_exact_duplicate_files_are_read_once(series_dir, tmp_path):
    files = sorted(series_dir.iterdir())
    shutil.copy(files[2], tmp_path / "dup.dcm")
    assert read_dicom_series([*files, tmp_path / "dup.dcm"]).array.shape[2] == len(files)


def test_per_slice_rescale_slope_and_intercept(series_dir, tmp_path):
    def rescale(k, ds):  # stored = (HU + 1024) // 2 with slope 2, on every other slice only
        if k % 2:
            ds.PixelData = (ds.pixel_array // 2).astype(np.uint16).tobytes()
            ds.RescaleSlope = 2

    paths = _edit(sorted(series_dir.iterdir()), tmp_path / "scaled", rescale)
    ref = read_dicom_series(sorted(series_dir.iterdir())).array
    got = read_dicom_series(paths).array
    assert np.abs(got - ref).max() <= 1.0  # one HU of rounding from halving


@pytest.mark.parametrize("syntax", ["rle", "j2k", "jpeg-ls"])
def test_compressed_series_read_like_the_uncompressed_one(series_dir, tmp_path, syntax):
    recompress(series_dir, tmp_path / syntax, syntax)
    assert pydicom.dcmread(next((tmp_path / syntax).iterdir())).file_meta.TransferSyntaxUID.is_compressed
    np.testing.assert_array_equal(read_dicom_series(sorted((tmp_path / syntax).iterdir())).array,
                                  read_dicom_series(sorted(series_dir.iterdir())).array)


@pytest.mark.parametrize("name", ["MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm"])
def test_pydicom_bundled_compressed_files_decode(name):
    ref = read_dicom_series([get_testdata_file("MR_small.dcm")], min_slices=1, require_ct=False).array
    got = read_dicom_series([get_testdata_file(name)], min_slices=1, require_ct=False)
    np.testing.assert_array_equal(got.array, ref)


def test_truncated_file_is_a_reason_not_a_crash(series_dir, tmp_path):
    files = [shutil.copy(f, tmp_path / f.name) for f in sorted(series_dir.iterdir())]
    data = Path(files[5]).read_bytes()
    Path(files[5]).write_bytes(data[: len(data) - 1000])
    with pytest.raises(SeriesError, match=Path(files[5]).name):
        read_dicom_series(files)
