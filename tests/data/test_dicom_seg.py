"""DICOM SEG writing: read back with highdicom, frames equal to the mask, references, codes, determinism."""

from __future__ import annotations

import highdicom as hd
import numpy as np
import pytest

from arena_seg.data.dicom_read import find_dicom_series, read_dicom_series
from arena_seg.data.dicom_seg import LOCAL_SCHEME, ORGAN_CODES, write_segmentation
from arena_seg.data.dicom_write import write_dicom_series
from arena_seg.data.phantoms import PHANTOM_LABELS, make_phantom


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """A phantom series read back, and its label map on the read grid (kidneys, liver, an organ without a code)."""
    ph = make_phantom(3, spacing=(8.0, 7.0, 9.0))
    root = tmp_path_factory.mktemp("seg")
    write_dicom_series(ph.image, ph.affine, root / "ct", patient_id="S3", seed=3)
    vol = read_dicom_series(find_dicom_series(root)[0][0].files)
    m = np.round(np.linalg.inv(ph.affine) @ vol.affine).astype(int)  # read index -> phantom index
    idx = np.indices(vol.array.shape).reshape(3, -1)
    label = ph.label[tuple(m[:3, :3] @ idx + m[:3, 3:4])].reshape(vol.array.shape)
    labels = {"liver": 1, "kidney_right": 3, "kidney_left": 4, "my_new_organ": PHANTOM_LABELS["pancreas"]}
    mask = np.where(np.isin(label, list(labels.values())), label, 0).astype(np.uint8)
    return vol, mask, labels, root


def test_seg_frames_match_the_mask_and_reference_the_source(case, tmp_path):
    vol, mask, labels, _ = case
    path = write_segmentation(tmp_path / "out" / "seg.dcm", vol.headers, mask, labels, model_name="unit")
    assert sorted(p.name for p in path.parent.iterdir()) == ["seg.dcm"]  # no temporary file left
    seg = hd.seg.segread(str(path))
    source_uids = [str(h.SOPInstanceUID) for h in vol.headers]
    assert {uid for _, _, uid in seg.get_source_image_uids()} == set(source_uids)
    assert seg.FrameOfReferenceUID == vol.headers[0].FrameOfReferenceUID
    by_name = {seg.get_segment_description(n).SegmentLabel: n for n in seg.segment_numbers}
    assert set(by_name) == set(labels)
    for organ, value in labels.items():
        frames = seg.get_pixels_by_source_instance(source_uids, segment_numbers=[by_name[organ]],
                                                   assert_missing_frames_are_empty=True)
        expected = (mask == value).transpose(2, 1, 0)  # (slices, rows, columns)
        np.testing.assert_array_equal(frames[..., 0].astype(bool), expected)
        assert expected.any()


def test_segments_carry_snomed_codes_and_laterality(case, tmp_path):
    vol, mask, labels, _ = case
    seg = hd.seg.segread(str(write_segmentation(tmp_path / "seg.dcm", vol.headers, mask, labels, model_name="m")))
    descs = {seg.get_segment_description(n).SegmentLabel: seg.get_segment_description(n)
             for n in seg.segment_numbers}
    liver = descs["liver"]
    assert liver.segmented_property_category.value == "123037004"  # Anatomical Structure
    assert (liver.segmented_property_type.value, liver.segmented_property_type.scheme_designator) == (
        ORGAN_CODES["liver"][0], "SCT")
    kidney = descs["kidney_left"].SegmentedPropertyTypeCodeSequence[0]
    assert kidney.CodeValue == "64033007"
    assert kidney.SegmentedPropertyTypeModifierCodeSequence[0].CodeMeaning == "Left"
    assert descs["my_new_organ"].segmented_property_type.scheme_designator == LOCAL_SCHEME
    assert str(liver.SegmentAlgorithmType) == "AUTOMATIC"
    assert liver.SegmentationAlgorithmIdentificationSequence[0].AlgorithmName == "arena-seg m"


def test_uids_are_deterministic_and_empty_masks_are_written(case, tmp_path):
    vol, mask, labels, _ = case
    a = hd.seg.segread(str(write_segmentation(tmp_path / "a.dcm", vol.headers, mask, labels, model_name="m")))
    b = hd.seg.segread(str(write_segmentation(tmp_path / "b.dcm", vol.headers, mask, labels, model_name="m")))
    assert (a.SeriesInstanceUID, a.SOPInstanceUID) == (b.SeriesInstanceUID, b.SOPInstanceUID)
    empty = write_segmentation(tmp_path / "e.dcm", vol.headers, np.zeros_like(mask), labels, model_name="m")
    assert hd.seg.segread(str(empty)).number_of_segments == len(labels)


def test_mask_of_the_wrong_shape_is_refused(case, tmp_path):
    vol, mask, labels, _ = case
    with pytest.raises(ValueError, match="does not fit"):
        write_segmentation(tmp_path / "x.dcm", vol.headers, mask[:, :, :-1], labels, model_name="m")
    assert not list(tmp_path.iterdir())
