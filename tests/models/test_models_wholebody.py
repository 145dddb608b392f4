"""MONAI Model Zoo wholeBody_ct_segmentation: bundle folder / model.pt loading and the download fallback."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from arena_seg.models import CheckpointError, build_network, get_spec, load_foundation
from arena_seg.models import wholebody as wb


def test_wholebody_spec():
    spec = get_spec("monai-wholebody")
    kw = spec.arch["kwargs"]
    assert spec.arch["class"] == "SegResNet" and kw["out_channels"] == 105 and kw["init_filters"] == 32
    assert kw["blocks_down"] == [1, 2, 2, 4] and kw["blocks_up"] == [1, 1, 1]
    assert len(spec.labels) == 104 and spec.background_channel == 0
    assert spec.labels["spleen"] == 1 and spec.labels["esophagus"] == 42 and spec.labels["urinary_bladder"] == 104
    pre = spec.preprocessing
    assert pre.spacing == (1.5, 1.5, 1.5) and pre.patch == (96, 96, 96) and pre.intensity == "nonzero_zscore_minmax"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """A fake bundle folder: <root>/models/model.pt holding a random SegResNet with the bundle's args."""
    torch.manual_seed(0)
    net = build_network(get_spec("monai-wholebody").arch)
    root = tmp_path_factory.mktemp("bundle") / wb.BUNDLE_NAME
    (root / "models").mkdir(parents=True)
    torch.save(net.state_dict(), root / "models" / "model.pt")
    return root, net


def _same(model: nn.Module, ref: nn.Module) -> bool:
    ref_state = ref.state_dict()
    return model.state_dict().keys() == ref_state.keys() and all(
        torch.equal(v, ref_state[k]) for k, v in model.state_dict().items()
    )


def test_load_bundle_folder_and_file(bundle):
    root, net = bundle
    model, spec = load_foundation("monai-wholebody", root)
    assert _same(model, net) and not model.training
    head = model.get_submodule(spec.head)
    assert isinstance(head, nn.Conv3d) and head.out_channels == 105 and head.kernel_size == (1, 1, 1)
    targets = [n for n, m in model.named_modules() if re.search(spec.targets[0], n)]
    assert len(targets) == 24 and all(isinstance(model.get_submodule(n), nn.Conv3d) for n in targets)
    model2, _ = load_foundation("monai-wholebody", str(root / "models" / "model.pt"))
    assert _same(model2, net)


def test_model_wrapper_and_module_prefix(tmp_path, bundle):
    _, net = bundle
    torch.save({"model": {"module." + k: v for k, v in net.state_dict().items()}}, tmp_path / "model.pt")
    assert _same(wb.load_wholebody(tmp_path / "model.pt"), net)


def test_mismatch_names_file(tmp_path, bundle):
    _, net = bundle
    state = net.state_dict()
    state.pop("conv_final.2.conv.bias")
    torch.save(state, tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match=r"conv_final\.2\.conv\.bias") as err:
        wb.load_wholebody(tmp_path)
    assert str(tmp_path / "model.pt") in str(err.value)


def test_folder_without_weights(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no models/model\.pt"):
        wb.resolve_wholebody_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        wb.resolve_wholebody_checkpoint(tmp_path / "missing.pt")


def _no_download(**kwargs):
    raise AssertionError("must not download")


def test_none_uses_cached_bundle(monkeypatch, bundle):
    root, net = bundle
    monkeypatch.setenv("ARENA_SEG_BUNDLE_DIR", str(root.parent))
    monkeypatch.setattr("monai.bundle.download", _no_download)
    model, _ = load_foundation("monai-wholebody")
    assert _same(model, net)


def test_none_download_failure_is_clear(monkeypatch, tmp_path):
    monkeypatch.setenv("ARENA_SEG_BUNDLE_DIR", str(tmp_path / "cache"))
    calls = []

    def offline(**kwargs):
        calls.append(kwargs)
        raise OSError("network unreachable")

    monkeypatch.setattr("monai.bundle.download", offline)
    with pytest.raises(RuntimeError, match="could not download the MONAI bundle wholeBody_ct_segmentation") as err:
        load_foundation("monai-wholebody")
    assert "--checkpoint" in str(err.value) and "network unreachable" in str(err.value)
    assert calls == [{"name": "wholeBody_ct_segmentation", "bundle_dir": str(tmp_path / "cache")}]
    monkeypatch.setattr("monai.bundle.download", lambda **kwargs: None)  # "succeeds" but leaves nothing
    with pytest.raises(RuntimeError, match=r"models/model\.pt is missing"):
        load_foundation("monai-wholebody")


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("ARENA_SEG_BUNDLE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert wb.bundle_cache_dir() == tmp_path / ".cache" / "arena-seg" / "bundles"
