"""Train options as Slicer sends them (checked before a task starts) and the scan-selection strategies."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from lib.conf import AppConf
from lib.errors import NoAdaptedModelError
from lib.strategies.uncertainty import Uncertainty, scan_uncertainty
from lib.train_options import default_options, parse_options, split_items

from arena_seg.errors import InputError

CONF = AppConf(app_dir=Path("."), labels=("gallbladder",), epochs=7)


def test_defaults_are_what_slicer_shows_and_sends_back():
    shown = default_options(CONF)
    assert shown["max_epochs"] == 7 and shown["method"][0] == "arena" and shown["device"][0] == "auto"
    sent = {k: v[0] if isinstance(v, list) else v for k, v in shown.items()}  # Slicer sends a list's first item
    options = parse_options({**sent, "model": "arena", "client_id": "user-xyz"}, CONF)
    assert options.config.epochs == 7 and options.config.method == "arena" and options.val_split == 0.2
    options = parse_options({"max_epochs": "3", "lr": "1e-3", "method": ["lora", "arena"], "rank": 4.0}, CONF)
    assert (options.config.epochs, options.config.lr, options.config.method, options.config.rank) == (3, 1e-3,
                                                                                                      "lora", 4)


@pytest.mark.parametrize("request_, option", [
    ({"max_epochs": 0}, "max_epochs"), ({"max_epochs": "ten"}, "max_epochs"), ({"rank": 2.5}, "rank"),
    ({"lam": -1}, "lam"), ({"lr": 0}, "lr"), ({"lr": float("nan")}, "lr"), ({"val_split": 1.0}, "val_split"),
    ({"method": "dora"}, "method"), ({"num_samples": True}, "num_samples"), ({"max_epoch": 5}, "max_epoch"),
])
def test_bad_options_name_the_option(request_, option):
    with pytest.raises(InputError, match=option):
        parse_options(request_, CONF)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only answer")
def test_cuda_on_a_cpu_server_is_refused():
    with pytest.raises(InputError, match="no GPU"):
        parse_options({"device": "cuda"}, CONF)


def test_split_keeps_one_scan_for_training():
    items = [{"id": str(i)} for i in range(3)]
    train, val = split_items(items, 0.34, seed=0)
    assert len(train) == 2 and len(val) == 1
    assert split_items(items[:1], 0.9, seed=0) == (items[:1], [])


def _probs(foreground: float, size: int = 12) -> torch.Tensor:
    """2-class softmax with an organ block of confidence ``foreground`` in a confident background."""
    fg = torch.full((size, size, size), 0.01)
    fg[4:8, 4:8, 4:8] = foreground
    return torch.stack([1 - fg, fg])


def test_uncertainty_is_entropy_near_the_predicted_organ():
    assert scan_uncertainty(_probs(0.99)) < 0.2
    assert scan_uncertainty(_probs(0.55)) > scan_uncertainty(_probs(0.9))
    assert math.isclose(scan_uncertainty(torch.full((2, 4, 4, 4), 0.5)), 1.0, rel_tol=1e-5)
    assert scan_uncertainty(_probs(0.3)) == 1.0  # no organ predicted: worth a look
    # the neighbourhood, not the whole volume: a larger confident background does not dilute the score
    assert math.isclose(scan_uncertainty(_probs(0.6, size=12)), scan_uncertainty(_probs(0.6, size=24)), rel_tol=1e-5)


class _Store:
    def __init__(self, tmp_path: Path, ids: list[str]) -> None:
        self.paths = {}
        for i in ids:
            self.paths[i] = tmp_path / f"{i}.nii.gz"
            self.paths[i].write_bytes(b"")

    def get_unlabeled_images(self) -> list[str]:
        return list(self.paths)

    def get_image_uri(self, image_id: str) -> str:
        return str(self.paths[image_id])


class _Models:
    def __init__(self, confidence: dict[str, float] | None) -> None:
        self.confidence = confidence
        self.calls = 0

    def arena(self, version=None, device=None):
        if self.confidence is None:
            raise NoAdaptedModelError("no adapted model yet")
        models = self

        class Predictor:
            def predict_array_with_probs(self, array, affine):
                models.calls += 1
                return None, _probs(models.confidence[str(int(array[0, 0, 0]))])

        return Predictor(), "v001"


def test_uncertainty_strategy_picks_the_least_sure_scan(tmp_path, monkeypatch):
    import lib.strategies.uncertainty as module

    class Volume:
        def __init__(self, path):
            self.array = torch.full((2, 2, 2), float(Path(path).name.split(".")[0][-1])).numpy()
            self.affine = None

    monkeypatch.setattr(module, "read_volume", Volume)
    store = _Store(tmp_path, ["scan_1", "scan_2", "scan_3"])
    models = _Models({"1": 0.95, "2": 0.6, "3": 0.8})
    strategy = Uncertainty(models)
    picked = strategy({}, store)
    assert picked["id"] == "scan_2" and picked["version"] == "v001" and picked["ranking"][0] == "scan_2"
    strategy({}, store)
    assert models.calls == 3  # scores are cached per (version, scan, file time)
    assert Uncertainty(_Models(None))({}, store)["id"] == "scan_1"  # no model yet: the first unlabelled scan
