"""DICOM CT series writer: geometry round trip through SimpleITK, tags through pydicom, determinism, errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from arena_seg.data.dicom_write import CT_IMAGE_STORAGE, write_dicom_series
from arena_seg.data.phantoms import make_phantom

LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _read_series_ras(folder: Path) -> tuple[np.ndarray, np.ndarray, sitk.Image]:
    """Read a series with SimpleITK (files sorted by GDCM) and return (array (X, Y, Z), RAS affine, image)."""
    reader = sitk.ImageSeriesReader()
    ids = reader.GetGDCMSeriesIDs(str(folder))
    assert len(ids) == 1
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder), ids[0]))
    img = reader.Execute()
    arr = np.transpose(sitk.GetArrayFromImage(img), (2, 1, 0))
    lps = np.eye(4)
    lps[:3, :3] = np.asarray(img.GetDirection()).reshape(3, 3) * np.asarray(img.GetSpacing())
    lps[:3, 3] = img.GetOrigin()
    return arr, LPS @ lps, img


def _assert_same_geometry(affine_read, affine, atol=1e-3):
    spacing_r, spacing = np.linalg.norm(affine_read[:3, :3], axis=0), np.linalg.norm(affine[:3, :3], axis=0)
    assert np.allclose(spacing_r, spacing, atol=atol), (spacing_r, spacing)
    assert np.allclose(affine_read[:3, :3] / spacing_r, affine[:3, :3] / spacing, atol=atol)  # directions
    assert np.allclose(affine_read[:3, 3], affine[:3, 3], atol=atol)  # origin


def _assert_same_voxels_in_world(arr_read, affine_read, arr, affine):
    """Every voxel has the same value at the same world position (index order may differ: axis flips)."""
    m = np.linalg.inv(affine_read) @ affine  # original index -> read index
    assert np.allclose(m, np.round(m), atol=1e-3), m
    m = np.round(m).astype(int)
    idx = np.indices(arr.shape).reshape(3, -1)
    ridx = m[:3, :3] @ idx + m[:3, 3:4]
    assert np.array_equal(arr_read[tuple(ridx)], arr[tuple(idx)])


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(5, spacing=(4.0, 3.5, 6.0))  # unequal x/y spacing and size catch row/column mix-ups


def test_round_trip_native_order_matches_the_nifti_affine_exactly(phantom, tmp_path):
    files = write_dicom_series(phantom.image, phantom.affine, tmp_path, patient_id="P5", seed=5, radiological=False)
    assert len(files) == phantom.image.shape[2]
    arr, affine, img = _read_series_ras(tmp_path)
    assert img.GetSize() == phantom.image.shape
    _assert_same_geometry(affine, phantom.affine)
    assert np.array_equal(arr, phantom.image)


def test_round_trip_radiological_display_order(phantom, tmp_path):
    write_dicom_series(phantom.image, phantom.affine, tmp_path, patient_id="P5", seed=5)
    ds = pydicom.dcmread(sorted(tmp_path.glob("*.dcm"))[0])
    assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
    arr, affine, _ = _read_series_ras(tmp_path)
    # same voxels at the same world positions; only the in-plane index order is reversed
    assert np.allclose(np.diag(affine)[:3], [-phantom.spacing[0], -phantom.spacing[1], phantom.spacing[2]])
    _assert_same_voxels_in_world(arr, affine, phantom.image, phantom.affine)
    flipped = np.flip(arr, axis=(0, 1))
    assert np.array_equal(flipped, phantom.image)


@pytest.mark.parametrize("radiological", [False, True])
def test_oblique_volume_round_trip(tmp_path, radiological):
    rng = np.random.default_rng(0)
    image = rng.integers(-1024, 2000, size=(20, 24, 7)).astype(np.int16)
    theta, phi = np.deg2rad(20.0), np.deg2rad(7.0)
    rz = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(phi), -np.sin(phi)], [0, np.sin(phi), np.cos(phi)]])
    affine = np.eye(4)
    affine[:3, :3] = rz @ rx @ np.diag([0.8, 1.1, 2.5])
    affine[:3, 3] = [-12.3, 45.6, -789.1]
    write_dicom_series(image, affine, tmp_path, seed=1, radiological=radiological)
    arr, affine_read, _ = _read_series_ras(tmp_path)
    if not radiological:
        _assert_same_geometry(affine_read, affine)
        assert np.array_equal(arr, image)
    _assert_same_voxels_in_world(arr, affine_read, image, affine)


def test_tags(phantom, tmp_path):
    files = write_dicom_series(phantom.image, phantom.affine, tmp_path, patient_id="P5",
                               series_description="synthetic CT test", seed=5)
    nx, ny, nz = phantom.image.shape
    sx, sy, sz = phantom.spacing
    dss = [pydicom.dcmread(f) for f in files]
    assert len({ds.SeriesInstanceUID for ds in dss}) == 1
    assert len({ds.StudyInstanceUID for ds in dss}) == 1
    assert len({ds.FrameOfReferenceUID for ds in dss}) == 1
    assert len({ds.SOPInstanceUID for ds in dss}) == nz
    z_prev = -np.inf
    for k, ds in enumerate(dss):
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert ds.file_meta.MediaStorageSOPClassUID == CT_IMAGE_STORAGE == ds.SOPClassUID
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.Modality == "CT" and ds.PatientID == "P5" and ds.SeriesDescription == "synthetic CT test"
        assert ds.InstanceNumber == k + 1
        assert (ds.Rows, ds.Columns) == (ny, nx)
        assert [float(v) for v in ds.PixelSpacing] == pytest.approx([sy, sx])  # row spacing first
        assert float(ds.SliceThickness) == pytest.approx(sz) == float(ds.SpacingBetweenSlices)
        assert ds.BitsAllocated == 16 and ds.PixelRepresentation == 0 and ds.SamplesPerPixel == 1
        assert float(ds.RescaleIntercept) == -1024 and float(ds.RescaleSlope) == 1
        ipp = np.array([float(v) for v in ds.ImagePositionPatient])
        world = phantom.affine @ [nx - 1, ny - 1, k, 1]  # radiological order: first pixel is the last i, j
        assert np.allclose(ipp, LPS[:3, :3] @ world[:3], atol=1e-3)
        assert float(ds.SliceLocation) == pytest.approx(ipp[2], abs=1e-3)
        assert ipp[2] > z_prev
        z_prev = ipp[2]
        hu = ds.pixel_array.astype(np.int32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        assert np.array_equal(hu, phantom.image[::-1, ::-1, k].T)


def test_deterministic_uids_and_bytes(tmp_path):
    image = np.arange(6 * 5 * 3, dtype=np.int16).reshape(6, 5, 3) - 1000
    affine = np.diag([0.7, 0.7, 3.0, 1.0])

    def digest(folder):
        return [hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(folder.glob("*.dcm"))]

    write_dicom_series(image, affine, tmp_path / "a", patient_id="X", seed=3)
    write_dicom_series(image, affine, tmp_path / "b", patient_id="X", seed=3)
    write_dicom_series(image, affine, tmp_path / "c", patient_id="X", seed=4)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    a = pydicom.dcmread(tmp_path / "a" / "CT_0001.dcm")
    c = pydicom.dcmread(tmp_path / "c" / "CT_0001.dcm")
    assert a.SeriesInstanceUID != c.SeriesInstanceUID and a.SOPInstanceUID != c.SOPInstanceUID


def test_values_below_minus_1024_use_signed_pixels(tmp_path):
    image = np.full((4, 3, 2), -2048, dtype=np.int16)
    image[1, 2, 1] = 3000
    write_dicom_series(image, np.eye(4), tmp_path, radiological=False)
    ds = pydicom.dcmread(tmp_path / "CT_0002.dcm")
    assert ds.PixelRepresentation == 1 and float(ds.RescaleIntercept) == -1024
    arr, _, _ = _read_series_ras(tmp_path)
    assert np.array_equal(arr, image)


def test_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError):
        write_dicom_series(np.zeros((4, 4), np.int16), np.eye(4), tmp_path)
    sheared = np.eye(4)
    sheared[0, 1] = 0.5
    with pytest.raises(ValueError):
        write_dicom_series(np.zeros((4, 4, 2), np.int16), sheared, tmp_path)
    with pytest.raises(ValueError):
        write_dicom_series(np.full((2, 2, 2), 70000, np.int32), np.eye(4), tmp_path)
