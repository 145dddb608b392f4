"""Labels as clients send them (Slicer .nrrd + label_info, .seg.nrrd, NIfTI by id), mapped to the organs by name
(a new organ gets the registry's next id), checked against the image, and stored only when good."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from app_support import GALLBLADDER, truth, write_nifti, write_seg_nrrd
from fastapi import HTTPException
from lib.datastore import ArenaDatastore
from lib.labels import normalise_label, parse_label_info, read_label
from lib.organs import OrganRegistry
from lib.writer import write_result

from arena_seg.data.volumes import read_volume
from arena_seg.errors import InputError
from arena_seg.organs import BASE_ORGANS, PHANTOM_LABELS

PANCREAS = PHANTOM_LABELS["pancreas"]


@pytest.fixture()
def organs(tmp_path) -> OrganRegistry:
    """The registry of a server started with --conf labels gallbladder on the phantoms' foundation organs."""
    return OrganRegistry(tmp_path / "arena", ("gallbladder",), BASE_ORGANS)


@pytest.fixture()
def case(phantom_dir):
    image = read_volume(phantom_dir / "images" / "phantom_000.nii.gz")
    label, affine = truth(phantom_dir, "phantom_000")
    return image, label, affine


def _slicer_nrrd(label, affine, tmp_path):
    """Slicer's labelmap export: segment indices as values (liver 1, gallbladder 2), NRRD in LPS."""
    values = np.zeros(label.shape, np.uint8)
    values[label == 1], values[label == GALLBLADDER] = 1, 2
    path = tmp_path / "label.nrrd"
    path.write_bytes(Path(write_result(values, affine, ".nrrd", "uint8")).read_bytes())
    return path


def test_slicer_nrrd_maps_by_label_info_name(case, tmp_path, organs):
    image, label, affine = case
    path = _slicer_nrrd(label, affine, tmp_path)
    info = [{"name": "liver", "idx": 1}, {"name": "Gallbladder", "idx": 2}]  # names match case-insensitively
    out, found = normalise_label(image, read_label(path), organs, info)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.array_equal(out == 1, label == GALLBLADDER) and set(np.unique(out)) == {0, 1}  # liver dropped
    assert found["arena_labels"] == {"gallbladder": 1} and found["arena_source"] == "label_info"


def test_nifti_without_label_info_maps_by_id(case, tmp_path, organs):
    image, label, affine = case
    path = write_nifti((label == GALLBLADDER).astype(np.uint8), affine, tmp_path / "label.nii.gz")
    out, found = normalise_label(image, read_label(path), organs)
    assert np.array_equal(out == 1, label == GALLBLADDER) and found["arena_source"] == "ids"
    with pytest.raises(InputError, match=r"holds ids \[1, 2, 3"):  # a full phantom label is not ids 1..n
        normalise_label(image, read_label(write_nifti(label, affine, tmp_path / "all.nii.gz")), organs)


def test_seg_nrrd_layers_and_cropped_extent(case, tmp_path, organs):
    image, label, affine = case
    liver, gall = (label == 1).astype(np.uint8), (label == GALLBLADDER).astype(np.uint8) * 3
    layered = write_seg_nrrd([liver, gall], affine, [("liver", 0, 1), ("gallbladder", 1, 3)], tmp_path / "a.seg.nrrd")
    out, found = normalise_label(image, read_label(layered), organs, [{"name": "gallbladder", "idx": 2}])
    assert np.array_equal(out == 1, label == GALLBLADDER) and found["arena_source"] == "seg.nrrd header"
    # Slicer may crop a segmentation to its extent: an aligned sub-box is pasted back on the image grid
    box = tuple(slice(int(a.min()), int(a.max()) + 1) for a in np.nonzero(label == GALLBLADDER))
    shifted = affine.copy()
    shifted[:3, 3] = (affine @ np.array([box[0].start, box[1].start, box[2].start, 1.0]))[:3]
    cropped = write_seg_nrrd([gall[box] // 3], shifted, [("gallbladder", 0, 1)], tmp_path / "b.seg.nrrd")
    out, _ = normalise_label(image, read_label(cropped), organs)
    assert np.array_equal(out == 1, label == GALLBLADDER)


@pytest.mark.parametrize("problem, message", [
    ("shape", "has shape"), ("affine", "not on the grid"), ("empty", "is empty"), ("names", "learns"),
    ("info", "label_info entry"), ("float", "non-integer"), ("generic", "Segment_1"),
])
def test_bad_labels_are_refused_with_a_reason(case, tmp_path, organs, problem, message):
    image, label, affine = case
    gall = (label == GALLBLADDER).astype(np.uint8)
    info = None
    if problem == "shape":
        gall = gall[:-2]
    elif problem == "affine":
        affine = affine.copy()
        affine[0, 3] += 7.5
    elif problem == "empty":
        gall[:] = 0
    elif problem == "names":
        info = [{"name": "spleen", "idx": 1}]  # a foundation organ: Slicer got it from the foundation's result
    elif problem == "generic":
        info = [{"name": "Segment_1", "idx": 1}]  # Slicer's default name: not an organ
    elif problem == "info":
        info = [{"label": "gallbladder"}]
    path = write_nifti(gall, affine, tmp_path / "bad.nii.gz")
    if problem == "float":
        import nibabel as nib

        nib.save(nib.Nifti1Image(gall.astype(np.float32) * 0.5, affine), str(path))
    with pytest.raises(InputError, match=message):
        normalise_label(image, read_label(path), organs, info)
    assert organs.ids() == {"gallbladder": 1}  # a refused label adds no organ


def test_parse_label_info_accepts_idx_or_id():
    assert parse_label_info([{"name": "a", "idx": 2}, {"name": "b", "id": "3"}]) == {"a": 2, "b": 3}
    with pytest.raises(InputError):
        parse_label_info({"name": "a"})


def test_datastore_stores_nothing_for_a_bad_label(phantom_dir, tmp_path):
    studies = tmp_path / "studies"
    studies.mkdir()
    for name in ("phantom_000", "phantom_001"):
        (studies / f"{name}.nii.gz").write_bytes((phantom_dir / "images" / f"{name}.nii.gz").read_bytes())
    registry = OrganRegistry(tmp_path / "arena", ("gallbladder",), BASE_ORGANS)
    store = ArenaDatastore(str(studies), extensions=["*.nii.gz", "*.nrrd"], registry=registry)
    label, affine = truth(phantom_dir, "phantom_001")  # the other phantom: a different grid
    wrong = write_nifti((label == GALLBLADDER).astype(np.uint8), affine, tmp_path / "wrong.nii.gz")
    final = studies / "labels" / "final"
    with pytest.raises(HTTPException) as err:
        store.save_label("phantom_000", str(wrong), "final", {})
    assert err.value.status_code == 400 and ("shape" in err.value.detail or "grid" in err.value.detail)
    assert not list(final.iterdir()) and store.get_labeled_images() == []
    with pytest.raises(HTTPException) as err:
        store.save_label("../phantom_000", str(wrong), "final", {})
    assert err.value.status_code == 404
    path = _slicer_nrrd(*truth(phantom_dir, "phantom_000"), tmp_path)
    assert store.save_label("phantom_000", str(path), "final", {"label_info": [{"name": "gallbladder", "idx": 2}]})
    assert [p.name for p in final.iterdir()] == ["phantom_000.nii.gz"]
    items, skipped = store.training_items({"gallbladder": 1})
    assert [i["id"] for i in items] == ["phantom_000"] and skipped == []
    stored = json.loads((studies / "datastore_v2.json").read_text())["objects"]["phantom_000"]["labels"]["final"]
    assert stored["info"]["arena_labels"] == {"gallbladder": 1}
    # a run for another organ does not train on this label; a registry that numbers gallbladder otherwise skips it
    assert store.training_items({"pancreas": 2}) == ([], [])
    other = ArenaDatastore(str(studies), extensions=["*.nii.gz", "*.nrrd"],
                           registry=OrganRegistry(tmp_path / "other", ("pancreas", "gallbladder")))
    assert other.training_items(other.registry.ids()) == ([], ["phantom_000"])


def test_a_label_naming_a_new_organ_gives_it_the_next_id_for_good(case, tmp_path, organs):
    image, label, affine = case
    values = np.zeros(label.shape, np.uint8)
    values[label == GALLBLADDER], values[label == PANCREAS], values[label == 1] = 1, 2, 3
    path = write_nifti(values, affine, tmp_path / "label.nii.gz")
    # Slicer's names: the new organ in any spelling, the foundation's liver (from its result) left out
    info = [{"name": "Pancreas", "idx": 2}, {"name": "liver", "idx": 3}, {"name": "gallbladder", "idx": 1}]
    out, found = normalise_label(image, read_label(path), organs, info)
    assert found["arena_labels"] == {"pancreas": 2, "gallbladder": 1} and organs.ids() == {"gallbladder": 1,
                                                                                          "pancreas": 2}
    assert np.array_equal(out == 2, label == PANCREAS) and np.array_equal(out == 1, label == GALLBLADDER)
    assert set(np.unique(out)) == {0, 1, 2}
    # the id stays: a later label of the new organ alone is stored with it, and an empty new segment adds nothing
    out, found = normalise_label(image, read_label(path), organs, [{"name": "pancreas", "idx": 2},
                                                                  {"name": "duodenum", "idx": 9}])
    assert found["arena_labels"] == {"pancreas": 2} and set(np.unique(out)) == {0, 2}
    assert organs.ids() == {"gallbladder": 1, "pancreas": 2}
