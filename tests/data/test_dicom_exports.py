"""The DICOM reader on exports as they come: no UIDs, enhanced multi-frame CT, scouts, two acquisitions, no file
meta. Each volume is compared with SimpleITK's reading of the plain series it was made from (or, where GDCM cannot
group the files, a dcm2niix-style conversion of their headers)."""

from __future__ import annotations

import shutil
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from dicom_cases import (
    add_scout,
    anonymised,
    dcm2niix_style,
    enhanced,
    second_acquisition,
    sitk_read,
    without_file_meta,
)
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless

from arena_seg.data.dicom_read import SeriesError, find_dicom_series, read_dicom_series
from arena_seg.data.dicom_seg import read_segmentation, seg_left_out_reason, write_segmentation
from arena_seg.data.dicom_write import write_dicom_series
from arena_seg.data.phantoms import make_phantom


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> tuple[list[Path], np.ndarray, np.ndarray]:
    """A phantom series (about 36 x 40 x 28, unequal spacings) and SimpleITK's (X, Y, Z) array and RAS affine of it."""
    ph = make_phantom(4, spacing=(10.0, 9.0, 14.0))
    files = write_dicom_series(ph.image, ph.affine, tmp_path_factory.mktemp("plain") / "ct", patient_id="E4", seed=4)
    array, affine = sitk_read(files)
    return files, array.astype(np.float32), affine


def _same(vol, array: np.ndarray, affine: np.ndarray) -> None:
    assert vol.array.shape == array.shape
    np.testing.assert_allclose(vol.affine, affine, atol=1e-4)
    np.testing.assert_array_equal(vol.array, array)


def test_series_without_uids_is_grouped_and_read(plain, tmp_path):
    files, array, affine = plain
    folder = tmp_path / "export"
    anonymised(files, folder / "a")
    other = anonymised(files[:5], folder / "b", syntax=ExplicitVRLittleEndian)  # another UID-less series
    series, unreadable = find_dicom_series(folder)
    assert not unreadable and sorted(len(s.files) for s in series) == [5, len(files)]
    big = max(series, key=lambda s: len(s.files))
    assert big.uid == "" and big.key.startswith("nouid-") and "no SeriesInstanceUID" in big.notes[0]
    assert big.key in big.notes[0] and big.key == max(find_dicom_series(folder)[0], key=lambda s: len(s.files)).key
    vol = read_dicom_series(big.files)  # JPEG 2000, and no instance UIDs to tell copies apart
    _same(vol, array, affine)
    shape, header_affine = dcm2niix_style(big.files)
    assert shape == array.shape and np.allclose(header_affine, affine, atol=1e-4)
    assert "SOPClassUID" in seg_left_out_reason(vol) and "SOPInstanceUID" in seg_left_out_reason(vol)
    shutil.copy(other[2], folder / "b" / "copy-of-3")  # an exact copy: read once, with a note
    small = read_dicom_series(sorted((folder / "b").iterdir()), min_slices=3)
    assert small.array.shape[2] == 5 and "1 duplicate image(s) left out" in small.notes[0]


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, JPEG2000Lossless])
def test_enhanced_multiframe_ct_and_its_seg(plain, tmp_path, syntax):
    files, array, affine = plain
    path = enhanced(files, tmp_path / "enhanced.dcm", syntax)  # frames stored in a shuffled order
    assert pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID == syntax
    (found,), _ = find_dicom_series(tmp_path)
    vol = read_dicom_series(found.files)
    _same(vol, array, affine)
    assert sorted(vol.frames) == list(range(1, len(files) + 1)) and vol.frames != sorted(vol.frames)
    assert seg_left_out_reason(vol) is None
    mask = np.zeros(vol.array.shape, np.uint8)
    mask[vol.array > 0], mask[:, :, :3] = 1, 0  # the first slices empty: frames must not shift
    seg = hd.seg.segread(str(write_segmentation(tmp_path / "seg.dcm", vol, mask, {"liver": 1}, model_name="t")))
    source = pydicom.dcmread(path, stop_before_pixels=True)
    assert {u for _, _, u in seg.get_source_image_uids()} == {source.SOPInstanceUID}
    referenced = {int(item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedFrameNumber)
                  for item in seg.PerFrameFunctionalGroupsSequence}
    assert referenced == {f for f, k in zip(vol.frames, range(mask.shape[2]), strict=True) if mask[:, :, k].any()}
    back, kept = read_segmentation(tmp_path / "seg.dcm", vol, lambda name: 1)
    assert kept == {"liver": 1}
    np.testing.assert_array_equal(back, mask)


def test_multiframe_without_frame_positions_is_refused(plain, tmp_path):
    path = enhanced(plain[0], tmp_path / "enhanced.dcm")
    ds = pydicom.dcmread(path)
    del ds.PerFrameFunctionalGroupsSequence
    ds.save_as(path)
    with pytest.raises(SeriesError, match="without per-frame functional groups"):
        read_dicom_series([path])


def test_scouts_in_the_series_and_the_folder_are_left_out(plain, tmp_path):
    files, array, affine = plain
    folder = tmp_path / "study"
    shutil.copytree(files[0].parent, folder)
    add_scout(files, folder / "scout-in-series.dcm")
    add_scout(files, folder / "scout-series.dcm", same_series=False)
    series, _ = find_dicom_series(folder)
    scout, ct = sorted(series, key=lambda s: len(s.files))
    assert scout.skip == "localizer (scout) images only, not a volume" and not ct.skip
    vol = read_dicom_series(ct.files)
    _same(vol, array, affine)
    assert vol.notes == ["1 localizer image(s) left out (ImageType LOCALIZER)"]
    # a lone image of another orientation (ImageType not telling) beside the series: a scout as well
    lone = pydicom.dcmread(folder / "scout-series.dcm")
    lone.ImageType = ["ORIGINAL", "PRIMARY", "OTHER"]
    lone.save_as(folder / "scout-series.dcm")
    series, _ = find_dicom_series(folder)
    assert min(series, key=lambda s: len(s.files)).skip.startswith("one image in another orientation")


def test_two_acquisitions_in_one_series(plain, tmp_path):
    files, array, affine = plain
    folder = tmp_path / "two"
    shutil.copytree(files[0].parent, folder)
    second = second_acquisition(files, folder)  # same positions, 200 HU brighter, every other slice slope 2
    (found,), _ = find_dicom_series(folder)
    vol = read_dicom_series(found.files)
    _same(vol, array, affine)  # acquisition 1 (ties go to the first)
    n = len(files)
    assert len(vol.notes) == 1 and vol.notes[0].startswith(f"2 acquisitions in one series (AcquisitionNumber 1: {n}")
    assert f"AcquisitionNumber 1 taken ({n} slices)" in vol.notes[0]
    brighter = read_dicom_series(second)  # the second acquisition alone: per-slice rescale honoured
    assert np.abs(brighter.array - (array + 200)).max() <= 1.0  # one HU of rounding from halving


def test_files_without_preamble_or_file_meta(plain, tmp_path):
    files, array, affine = plain
    raw = without_file_meta(files, tmp_path / "old")
    assert raw[0].read_bytes()[128:132] != b"DICM" and raw[0].read_bytes()[:2] == b"\x08\x00"
    (found,), unreadable = find_dicom_series(tmp_path / "old")
    assert not unreadable and len(found.files) == len(files)
    _same(read_dicom_series(found.files), array, affine)
