"""FSEFT Swin-UNETR: checkpoint key layout (as their main_pretrain.py writes it) and legacy patch merging."""

from __future__ import annotations

import argparse
import dataclasses

import pytest
import torch

from arena_seg.models import CheckpointError, CheckpointWarning, build_network, get_spec, load_foundation
from arena_seg.models import swinunetr as sw
from arena_seg.models.spec import LEGACY_MERGING


def fseft_layout(state: dict) -> dict:
    """Re-key a MONAI SwinUNETR state_dict the way fseft.pth is laid out (DDP state_dict, `classifier` head)."""
    out = {}
    for key, value in state.items():
        key = key.replace("out.conv.conv.", "classifier.")
        out["module." + key] = value.clone()
    return out


def test_fseft_spec():
    spec = get_spec("fseft-swinunetr")
    assert spec.out_channels == 29 and len(spec.labels) == 29
    assert spec.background_channel is None and spec.activation == "sigmoid"
    assert spec.labels["spleen"] == 0 and spec.labels["kidney_left"] == 2 and spec.labels["colon_tumor"] == 28
    assert spec.preprocessing.spacing == (1.5, 1.5, 1.5) and spec.preprocessing.hu_window == (-175.0, 250.0)
    assert spec.preprocessing.patch == (96, 96, 96) and spec.preprocessing.intensity == "hu_window"
    assert spec.arch["kwargs"]["feature_size"] == 48 and spec.arch["kwargs"]["downsample"] == LEGACY_MERGING


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("module.swinViT.layers1.0.blocks.0.attn.qkv.weight", "swinViT.layers1.0.blocks.0.attn.qkv.weight"),
        ("module.classifier.weight", "out.conv.conv.weight"),
        ("module.backbone.encoder1.layer.conv1.conv.weight", "encoder1.layer.conv1.conv.weight"),
        ("backbone.swin_vit.patch_embed.proj.bias", "swinViT.patch_embed.proj.bias"),
        ("swinViT.layers2.0.blocks.1.mlp.fc2.weight", "swinViT.layers2.0.blocks.1.mlp.linear2.weight"),
        ("out.conv.conv.bias", "out.conv.conv.bias"),
    ],
)
def test_fseft_key(key, expected):
    assert sw.fseft_key(key) == expected


def test_legacy_merging_matches_fseft_order_not_monai15():
    torch.manual_seed(0)
    legacy = sw.LegacyPatchMerging(dim=3)
    x = torch.randn(1, 4, 4, 4, 3)
    # x0..x7 exactly as in FSEFT pretrain/models/model_pretrain.py PatchMerging (MONAI 0.9 code)
    parts = [
        x[:, 0::2, 0::2, 0::2], x[:, 1::2, 0::2, 0::2], x[:, 0::2, 1::2, 0::2], x[:, 0::2, 0::2, 1::2],
        x[:, 1::2, 0::2, 1::2], x[:, 0::2, 1::2, 0::2], x[:, 0::2, 0::2, 1::2], x[:, 1::2, 1::2, 1::2],
    ]  # fmt: skip
    with torch.no_grad():
        expected = legacy.reduction(legacy.norm(torch.cat(parts, -1)))
        assert torch.equal(legacy(x), expected)
        from monai.networks.nets.swin_unetr import PatchMerging

        monai15 = PatchMerging(dim=3)
        monai15.load_state_dict(legacy.state_dict())  # same parameter names
        assert not torch.allclose(monai15(x), expected)  # why the FSEFT arch needs LEGACY_MERGING


@pytest.fixture(scope="module")
def fs48_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    state = build_network(get_spec("fseft-swinunetr").arch).state_dict()
    path = tmp_path_factory.mktemp("fseft") / "fseft.pth"
    torch.save(fseft_layout(state), path)
    return path, state


def test_fseft_fs48_every_key_maps(fs48_checkpoint):
    path, state = fs48_checkpoint
    model, spec = load_foundation("fseft-swinunetr", path)
    assert spec is get_spec("fseft-swinunetr") and not model.training
    loaded = model.state_dict()
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    assert sum(isinstance(m, sw.LegacyPatchMerging) for m in model.modules()) == 4
    assert model.get_submodule(spec.head).out_channels == 29


# Error cases on a small (feature size 12) FSEFT-like layout, built once, to keep them fast.
SMALL_ARCH = sw.swinunetr_arch(out_channels=29, feature_size=12, downsample=LEGACY_MERGING)


@pytest.fixture(scope="module")
def small_net():
    torch.manual_seed(1)
    net = build_network(SMALL_ARCH)
    return net, {k: v.clone() for k, v in net.state_dict().items()}


@pytest.fixture()
def small_fseft(monkeypatch, small_net):
    """Make load_fseft build (a reset copy of) the small net; returns the reference state_dict."""
    net, state = small_net
    monkeypatch.setattr(sw, "FSEFT_SPEC", dataclasses.replace(sw.FSEFT_SPEC, arch=SMALL_ARCH))

    def build(arch):
        assert arch == SMALL_ARCH
        with torch.no_grad():
            for value in net.state_dict().values():
                value.zero_()
        return net

    monkeypatch.setattr(sw, "build_network", build)
    return state


def test_fseft_containers_folder_and_optional_buffers(tmp_path, small_fseft):
    ckpt = fseft_layout(small_fseft)
    no_index = {k: v for k, v in ckpt.items() if not k.endswith("relative_position_index")}
    cases = {"plain.pth": ckpt, "net.pth": {"net": ckpt}, "sd.pth": {"state_dict": no_index, "epoch": 100}}
    for name, obj in cases.items():
        torch.save(obj, tmp_path / name)
        model = sw.load_fseft(tmp_path / name)
        if name == "sd.pth":  # buffers absent from the file stay as built (here: zeroed by the fake builder)
            small_fseft = {k: v for k, v in small_fseft.items() if not k.endswith("relative_position_index")}
        assert all(torch.equal(model.state_dict()[k], v) for k, v in small_fseft.items()), name
    (tmp_path / "dir").mkdir()
    torch.save(ckpt, tmp_path / "dir" / "fseft.pth")
    assert torch.equal(
        sw.load_fseft(tmp_path / "dir").state_dict()["out.conv.conv.bias"], ckpt["module.classifier.bias"]
    )


@pytest.mark.parametrize(
    ("edit", "pattern"),
    [
        (lambda s: s.pop("module.encoder1.layer.conv1.conv.weight"), r"missing.*encoder1\.layer\.conv1\.conv\.weight"),
        (lambda s: s.__setitem__("module.classifier.weight", torch.zeros(14, 12, 1, 1, 1)), r"shape mismatch"),
    ],
)
def test_fseft_mismatch_names_file_and_keys(tmp_path, small_fseft, edit, pattern):
    ckpt = fseft_layout(small_fseft)
    edit(ckpt)
    torch.save(ckpt, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match=pattern) as err:
        sw.load_fseft(tmp_path / "bad.pth")
    assert str(tmp_path / "bad.pth") in str(err.value)


def test_fseft_extra_keys_are_left_out_with_a_warning(tmp_path, small_fseft):
    """FSEFT's own loader ignores keys its network lacks (load_state_dict strict=False): so do we, but say so."""
    ckpt = fseft_layout(small_fseft)
    ckpt["module.prompt.weight"] = torch.zeros(1)
    ckpt["module.organ_embedding"] = torch.zeros(29, 512)
    torch.save({"state_dict": ckpt, "optimizer": {"lr": torch.tensor(1e-4)}}, tmp_path / "extra.pth")
    with pytest.warns(CheckpointWarning, match=r"2 checkpoint key\(s\).*left out: prompt\.weight, organ_embedding"):
        model = sw.load_fseft(tmp_path / "extra.pth")
    assert all(torch.equal(model.state_dict()[k], v) for k, v in small_fseft.items())
    ckpt.pop("module.encoder1.layer.conv1.conv.weight")  # a missing network key stays an error, extras or not
    torch.save(ckpt, tmp_path / "extra.pth")
    with pytest.raises(CheckpointError, match=r"missing.*encoder1\.layer\.conv1\.conv\.weight") as err:
        sw.load_fseft(tmp_path / "extra.pth")
    assert "prompt" not in str(err.value)


def test_fseft_file_errors(tmp_path, small_fseft):
    with pytest.raises(ValueError, match="--checkpoint PATH") as err:
        load_foundation("fseft-swinunetr")
    assert "--conf checkpoint" in str(err.value) and "fseft.pth" in str(err.value)
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_foundation("fseft-swinunetr", tmp_path / "nope.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pth"):
        sw.load_fseft(tmp_path / "junk.pth")
    torch.save({"state_dict": fseft_layout(small_fseft), "args": argparse.Namespace(lr=1)}, tmp_path / "obj.pth")
    with pytest.raises(CheckpointError, match="obj.pth.*other than tensors"):
        sw.load_fseft(tmp_path / "obj.pth")
    torch.save({"optimizer": {}, "epoch": 3}, tmp_path / "nostate.pth")
    with pytest.raises(CheckpointError, match="nostate.pth.*no state_dict"):
        sw.load_fseft(tmp_path / "nostate.pth")
