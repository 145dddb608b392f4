"""Peak memory in the batch report, the refusal of more batch processes than memory holds, label counts."""

from __future__ import annotations

import numpy as np
import pytest

from arena_seg.errors import InputError
from arena_seg.inference import memory


def test_label_counts_equal_bincount_in_chunks():
    mask = np.random.default_rng(0).integers(0, 7, size=(31, 17, 9)).astype(np.uint8)
    np.testing.assert_array_equal(memory.label_counts(mask, chunk=1000), np.bincount(mask.ravel(), minlength=256))


def test_process_verdict(monkeypatch):
    monkeypatch.setattr(memory, "available_mb", lambda: 10_000.0)
    assert memory.process_verdict(3000.0, 3, "a scan") is None  # 9 GB fit in 10
    assert memory.process_verdict(30_000.0, 1, "a scan") is None  # one process always starts
    message = memory.process_verdict(3000.0, 4, "a scan")
    assert "4 processes" in message and "start at most 3" in message and "--nproc_per_node 3" in message


@pytest.fixture(scope="module")
def predictor(coarse_network_dir):
    from arena_seg.inference.loading import load_model
    from arena_seg.inference.predictor import Predictor

    return Predictor(*load_model(str(coarse_network_dir)), device="cpu")


def test_estimate_grows_with_the_scan_and_the_classes(predictor):
    small = memory.estimate_mb(predictor, (128, 128, 100), (0.7, 0.7, 1.0))
    large = memory.estimate_mb(predictor, (512, 512, 400), (0.7, 0.7, 1.0))
    assert 0 < small < large
    assert large < 2048  # a 7-class network on a 512² × 400 scan: about its size, not size × classes


def test_batch_report_has_peak_memory_and_refuses_too_many_processes(predictor, phantom_series, tmp_path,
                                                                     monkeypatch):
    from arena_seg.inference import batch

    runner = batch.BatchRunner(predictor, formats=["nifti"])
    series = phantom_series / "dicom" / "phantom_000"
    (entry,) = runner.run([series], tmp_path / "out")["series"]
    assert entry["status"] == "done"
    assert entry["memory"]["peak_rss_mb"] > 50 and entry["memory"]["rss_kind"]
    # 8 processes of torchrun on a machine with 100 MB available: refused before any series is read
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    monkeypatch.setattr(memory, "available_mb", lambda: 100.0)
    with pytest.raises(InputError, match=r"8 processes .* largest series \(phantom_00\d.*start at most 0"):
        runner.run([phantom_series / "dicom"], tmp_path / "out2")
    assert not (tmp_path / "out2" / "report.json").exists()
