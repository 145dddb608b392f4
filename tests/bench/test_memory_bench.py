"""`bench memory`'s training rows: the CacheDataset built with the former and the chunked loading, side by side."""

from __future__ import annotations

import nibabel as nib
import pytest

from arena_seg.bench.memory import PIPELINES, clinical_scan, measure


@pytest.fixture(scope="module")
def scan_and_label(tmp_path_factory):
    folder = tmp_path_factory.mktemp("memory")
    paths = []
    for name, label in (("ct.nii", False), ("label.nii", True)):
        array, affine = clinical_scan((48, 40, 36), label=label)
        nib.save(nib.Nifti1Image(array, affine), str(folder / name))
        paths.append(str(folder / name))
    return paths


def test_training_rows_cache_the_same_tensors(scan_and_label):
    image, label = scan_and_label
    rows = {p: measure({"model": "default", "path": image, "label": label, "pipeline": p, "train_scans": 2})
            for p in PIPELINES if p.startswith("train-")}
    before, after = rows["train-before"], rows["train-after"]
    assert before["scans"] == after["scans"] == 2 and before["shape"] == [48, 40, 36]
    assert before["cached_shape"] == after["cached_shape"]
    assert before["cached_mb"] == pytest.approx(after["cached_mb"], rel=0.05)  # meta dicts aside
    for row in rows.values():
        assert row["peak_rss_mb"] >= row["loaded_rss_mb"] > 0 and row["cpu_s"] >= 0


def test_clinical_label_is_a_label_map(scan_and_label):
    values = nib.load(scan_and_label[1]).get_fdata()
    assert values.min() == 0 and values.max() > 1 and (values == values.round()).all()


def test_prediction_rows_before_and_after(scan_and_label):
    """A job as run_memory writes it (sw_batch_size None: each pipeline's own) gives a row per pipeline with the
    time inside the network and CPU time; the masks agree."""
    image, _ = scan_and_label
    rows = {p: measure({"model": "default", "path": image, "pipeline": p, "threads": 1, "checkpoint": None,
                        "sw_batch_size": None}) for p in ("before", "after")}
    assert rows["before"]["sw_batch_size"] == 2 and rows["after"]["sw_batch_size"] == 1
    for row in rows.values():
        assert 0 <= row["network_s"] <= row["predict_s"] and row["cpu_s"] >= 0
        assert row["peak_rss_mb"] >= row["loaded_rss_mb"] > 0
    before, after = rows["before"]["mask_counts"], rows["after"]["mask_counts"]
    assert sum(abs(a - b) for a, b in zip(before, after, strict=True)) <= 0.001 * 48 * 40 * 36
