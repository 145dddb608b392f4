"""Registry, specs, network builder and head replacement."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from arena_seg.models import (
    FoundationSpec,
    Preprocessing,
    build_network,
    default_model_dir,
    get_spec,
    list_foundations,
    load_foundation,
    replace_head,
    save_network,
)

NAMES = ["default", "fseft-swinunetr", "monai-wholebody"]


def test_list_foundations():
    assert list_foundations() == NAMES


def test_unknown_name_lists_known_names():
    for call in (get_spec, load_foundation):
        with pytest.raises(ValueError, match="unknown foundation model 'nope'") as err:
            call("nope")
        assert all(name in str(err.value) for name in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_spec_is_consistent(name):
    spec = get_spec(name)
    assert isinstance(spec, FoundationSpec) and spec.name == name
    assert json.loads(json.dumps(spec.arch)) == spec.arch  # JSON-able and JSON-stable
    channels = list(spec.labels.values())
    assert len(set(channels)) == len(channels) and all(0 <= c < spec.out_channels for c in channels)
    if spec.background_channel is None:
        assert len(channels) == spec.out_channels and spec.activation == "sigmoid"
    else:
        assert spec.background_channel not in channels and len(channels) == spec.out_channels - 1
    assert spec.targets and all(re.compile(t) for t in spec.targets)
    assert spec.checkpoint_hint


def test_default_spec():
    spec = get_spec("default")
    assert spec.labels == {"liver": 1, "spleen": 2, "kidney_right": 3, "kidney_left": 4, "aorta": 5, "stomach": 6}
    assert spec.preprocessing == Preprocessing(spacing=(3.0, 3.0, 3.0), patch=(64, 64, 64))
    assert spec.preprocessing.hu_window == (-175.0, 250.0) and spec.preprocessing.orientation == "RAS"
    assert spec.head == "out.conv.conv"
    kw = spec.arch["kwargs"]
    assert spec.arch["class"] == "SwinUNETR" and "img_size" not in kw
    assert (kw["feature_size"], kw["out_channels"], kw["use_v2"]) == (12, 7, False)


@pytest.fixture(scope="module")
def default_net():
    torch.manual_seed(0)
    return build_network(get_spec("default").arch).eval()


@pytest.fixture(scope="module")
def default_forward(default_net):
    """One 64^3 forward of the default net: (logits, input of the head conv)."""
    seen = {}
    hook = default_net.get_submodule("out").register_forward_hook(lambda m, args, out: seen.update(feats=args[0]))
    with torch.no_grad():
        out = default_net(torch.randn(1, 1, 64, 64, 64))
    hook.remove()
    return out, seen["feats"]


def test_default_network_forward_gives_7_channels(default_net, default_forward):
    spec = get_spec("default")
    modules = dict(default_net.named_modules())
    assert isinstance(modules[spec.head], nn.Conv3d) and modules[spec.head].out_channels == 7
    assert sum(bool(re.search(spec.targets[0], n)) for n in modules) == 4  # one Swin block per stage
    assert default_forward[0].shape == (1, 7, 64, 64, 64)


def test_build_network_errors():
    with pytest.raises(ValueError, match="unknown network class 'NoSuchNet'"):
        build_network({"class": "NoSuchNet", "kwargs": {}})
    with pytest.raises(ValueError, match="cannot build SwinUNETR"):  # img_size is gone in MONAI 1.5
        build_network({"class": "SwinUNETR", "kwargs": {"img_size": 96, "in_channels": 1, "out_channels": 2}})
    with pytest.raises(ValueError, match="arch must be a dict"):
        build_network("SwinUNETR")  # type: ignore[arg-type]


def test_preprocessing_round_trip_and_validation():
    pre = Preprocessing(spacing=[1, 1, 2], patch=[32, 32, 32], intensity="nonzero_zscore_minmax")
    assert pre.spacing == (1.0, 1.0, 2.0) and pre.patch == (32, 32, 32)
    assert Preprocessing.from_dict(json.loads(json.dumps(pre.to_dict()))) == pre
    with pytest.raises(ValueError):
        Preprocessing(spacing=(1.0, 1.0))
    with pytest.raises(ValueError):
        Preprocessing(spacing=(1.0, 1.0, 1.0), intensity="zscore")
    with pytest.raises(ValueError):
        Preprocessing(spacing=(1.0, 1.0, 1.0), hu_window=(250.0, -175.0))


def test_default_model_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("ARENA_SEG_DEFAULT_MODEL", raising=False)
    repo = Path(__file__).resolve().parents[2]
    assert default_model_dir() == repo / "sample-data" / "default"
    monkeypatch.setenv("ARENA_SEG_DEFAULT_MODEL", str(tmp_path))
    assert default_model_dir() == tmp_path


def test_default_model_missing_says_how_to_make_it(monkeypatch, tmp_path):
    monkeypatch.setenv("ARENA_SEG_DEFAULT_MODEL", str(tmp_path / "none"))
    with pytest.raises(FileNotFoundError, match="embedded default model is missing") as err:
        load_foundation("default")
    assert "arena-seg pretrain" in str(err.value) and str(tmp_path / "none") in str(err.value)


def test_load_default_from_env_folder(monkeypatch, tmp_path, default_net):
    spec = get_spec("default")
    save_network(
        default_net, tmp_path / "default", name="default", arch=spec.arch, labels=spec.labels,
        preprocessing=spec.preprocessing, targets=spec.targets, head=spec.head, metadata={"description": "test"},
    )  # fmt: skip
    monkeypatch.setenv("ARENA_SEG_DEFAULT_MODEL", str(tmp_path / "default"))
    model, loaded = load_foundation("default")
    assert not model.training
    assert (loaded.labels, loaded.preprocessing, loaded.head, loaded.arch) == (
        spec.labels, spec.preprocessing, spec.head, spec.arch,
    )  # fmt: skip
    ref = default_net.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in model.state_dict().items())


# ---- replace_head -----------------------------------------------------------------------------------------------


def _tiny_net() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv3d(4, 5, 1)).eval()


def test_replace_head_copies_rows_exactly_and_inits_fresh_rows():
    net = _tiny_net()
    x = torch.randn(2, 1, 6, 6, 6)
    with torch.no_grad():
        before = net(x)
    assert replace_head(net, "2", [0, 3, None, 1]) is net
    head = net[2]
    assert isinstance(head, nn.Conv3d) and head.out_channels == 4 and head.weight.requires_grad
    with torch.no_grad():
        after = net(x)
    for new, old in ((0, 0), (1, 3), (3, 1)):
        assert torch.equal(after[:, new], before[:, old])
    assert head.bias[2].item() == 0.0 and 0 < head.weight[2].abs().max().item() < 0.1


def test_replace_head_on_swinunetr(default_net, default_forward):
    logits, feats = default_forward
    holder = nn.Module()  # just the out block, so the 64^3 forward of the trunk is not run again
    holder.out = copy.deepcopy(default_net.get_submodule("out"))
    replace_head(holder, "out.conv.conv", [0, 2, None])
    assert holder.get_submodule("out.conv.conv").out_channels == 3
    with torch.no_grad():
        new = holder.out(feats)
    torch.testing.assert_close(new[:, 0], logits[:, 0], rtol=0, atol=1e-6)
    torch.testing.assert_close(new[:, 1], logits[:, 2], rtol=0, atol=1e-6)


def test_replace_head_errors():
    net = _tiny_net()
    with pytest.raises(ValueError, match="out of range"):
        replace_head(net, "2", [0, 5])
    with pytest.raises(ValueError, match="expected nn.Conv3d"):
        replace_head(net, "1", [0])
    with pytest.raises(ValueError, match="no module named 'head.conv'"):
        replace_head(net, "head.conv", [0])
    with pytest.raises(ValueError, match="at least one"):
        replace_head(net, "2", [])


def test_default_targets_adapt_qkv_and_decoder_convolutions():
    from arena_seg import adapters

    spec = get_spec("default")
    wrapped = set(adapters.inject(build_network(spec.arch), adapters.ArenaConfig(rank=2, targets=spec.targets)))
    assert wrapped == {f"swinViT.layers{i}.0.blocks.0.attn.qkv" for i in range(1, 5)} | {
        f"decoder{i}.conv_block.conv{j}.conv" for i in range(1, 6) for j in (1, 2)}
