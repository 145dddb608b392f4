import copy
import re

import pytest
import torch
from monai.networks.nets import SegResNet, SwinUNETR
from torch import nn

from arena_seg.adapters import (
    ArenaConfig,
    ArenaConv3d,
    ArenaConvTranspose3d,
    ArenaLayer,
    ArenaLinear,
    arena_layers,
    bitfit,
    effective_ranks,
    full_finetune,
    inject,
    linear_probe,
    lora_config,
    merge,
    prune,
    trainable_parameters,
)

from .helpers import max_diff, randomize


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv3d(4, 4, 3, stride=2, padding=1))
        self.up = nn.ConvTranspose3d(4, 4, 2, stride=2)
        self.norm = nn.GroupNorm(2, 4)
        self.head = nn.Conv3d(4, 2, 1)

    def forward(self, x):
        return self.head(self.norm(self.up(self.enc(x))))


def _check_network(model: nn.Module, x: torch.Tensor, config: ArenaConfig, expected: dict[type, int]):
    """Inject, check exact identity at B=0, randomise, check merge equivalence and state_dict keys."""
    keys = list(model.state_dict())
    with torch.no_grad():
        y0 = model(x)
        names = inject(model, config)
        assert torch.equal(model(x), y0)
        counts = {cls: sum(isinstance(m, cls) for m in arena_layers(model).values()) for cls in expected}
        assert counts == expected and len(names) == sum(expected.values())
        randomize(model, std=0.05)
        y1 = model(x)
        assert max_diff(y1, y0) > 1e-2
        merged = merge(model)
        assert not any(isinstance(m, ArenaLayer) for m in merged.modules())
        assert list(merged.state_dict()) == keys
        assert max_diff(merged(x), y1) <= 1e-4


@pytest.fixture(scope="module")
def swin():
    torch.manual_seed(0)
    # 32 x 32 x 64: every side divisible by 32, and the bottleneck keeps 2 voxels for InstanceNorm.
    # One block per stage halves the CPU time and still has a qkv/proj/mlp in every stage.
    model = SwinUNETR(in_channels=1, out_channels=3, feature_size=12, depths=(1, 1, 1, 1)).eval()
    return model, torch.randn(1, 1, 32, 32, 64)


def test_swin_unetr_qkv(swin):
    model, x = copy.deepcopy(swin[0]), swin[1]
    _check_network(model, x, ArenaConfig(rank=4, alpha=32), {ArenaLinear: 4})  # scale 8: a visible update


def test_swin_unetr_proj_mlp(swin):
    model, x = copy.deepcopy(swin[0]), swin[1]
    config = ArenaConfig(rank=4, targets=(r"attn\.proj$", r"mlp\.linear\d$", r"patch_embed\.proj$"))
    _check_network(model, x, config, {ArenaLinear: 12, ArenaConv3d: 1})


def test_segresnet_convs_and_deconvs():
    torch.manual_seed(0)
    model = SegResNet(init_filters=8, in_channels=1, out_channels=3, upsample_mode="deconv").eval()
    # conv\d?$ also matches the Convolution containers conv1/conv2, which inject must skip silently
    config = ArenaConfig(rank=4, targets=(r"conv\d?$",))
    _check_network(model, torch.randn(1, 1, 16, 16, 16), config, {ArenaConv3d: 32, ArenaConvTranspose3d: 3})


def test_inject_names_freezing_and_counts():
    model = Tiny()
    names = inject(model, ArenaConfig(rank=3, targets=(r"enc\.\d$", r"^up$"), trainable=(r"^head$",)))
    assert names == ["enc.0", "enc.2", "up"]
    grads = {n for n, p in model.named_parameters() if p.requires_grad}
    adapters = {f"{n}.{part}" for n in names for part in ("lora_A.weight", "lora_B.weight", "gate")}
    assert grads == adapters | {"head.weight", "head.bias"}
    # enc.0: A 3x1x27, B 4x3, g 3; enc.2: A 3x4x27, B 4x3, g 3; up: A 4x3x8, B 4x3, g 3; head: 8 + 2
    assert trainable_parameters(model) == (81 + 12 + 3) + (324 + 12 + 3) + (96 + 12 + 3) + 10
    assert effective_ranks(model) == {"enc.0": 3, "enc.2": 3, "up": 3}
    with torch.no_grad():
        model.enc[0].gate[:] = 0.0
        model.up.gate[1] = 0.0
    assert effective_ranks(model) == {"enc.0": 0, "enc.2": 3, "up": 2}
    randomize_b(model)
    x = torch.randn(1, 1, 6, 6, 6)
    y = model(x)
    assert prune(model) == {"enc.0": 0, "enc.2": 3, "up": 2}
    assert max_diff(model(x), y) <= 1e-6
    assert model.up.lora_A.weight.shape == (4, 2, 2, 2, 2) and model.up.lora_B.weight.shape == (4, 2, 1, 1, 1)
    assert trainable_parameters(model) == 0 + (324 + 12 + 3) + (64 + 8 + 2) + 10


@torch.no_grad()
def randomize_b(model: nn.Module) -> None:
    for layer in arena_layers(model).values():
        layer.lora_B.weight.normal_()


def test_refusals():
    with pytest.raises(ValueError, match=re.escape("['nothing_here$']")):
        inject(Tiny(), ArenaConfig(targets=("nothing_here$",)))
    with pytest.raises(ValueError, match="'norm'.*GroupNorm"):
        inject(Tiny(), ArenaConfig(targets=("^norm$", "^head$")))
    grouped = nn.Sequential(nn.Conv3d(4, 4, 3), nn.Conv3d(4, 4, 3, groups=2))
    with pytest.raises(ValueError, match="grouped convolution '1'"):
        inject(grouped, ArenaConfig(targets=(r"^\d$",)))
    with pytest.raises(ValueError, match="Linear/Conv3d/ConvTranspose3d"):
        inject(nn.Sequential(nn.ReLU()), ArenaConfig(targets=("0",)))
    with pytest.raises(ValueError, match="trainable patterns"):
        inject(Tiny(), ArenaConfig(targets=("head",), trainable=("decoder",)))
    model = Tiny()
    inject(model, ArenaConfig(targets=("head",)))
    with pytest.raises(ValueError, match="already"):
        inject(model, ArenaConfig(targets=("up",)))


def test_merge_is_in_place_and_copy_keeps_adapter():
    torch.manual_seed(0)
    model = Tiny()
    inject(model, ArenaConfig(rank=2, targets=("head",)))
    randomize(model)
    plain = merge(copy.deepcopy(model))
    assert isinstance(model.head, ArenaLayer) and isinstance(plain.head, nn.Conv3d)
    assert merge(model) is model and isinstance(model.head, nn.Conv3d)


def test_selectors():
    model = Tiny()
    assert bitfit(model) == ["enc.0.bias", "enc.2.bias", "up.bias", "norm.bias", "head.bias"]
    assert set(bitfit(model, trainable=("norm",))) == {
        "enc.0.bias", "enc.2.bias", "up.bias", "norm.weight", "norm.bias", "head.bias",
    }
    assert linear_probe(model, ["^head$"]) == ["head.weight", "head.bias"]
    assert trainable_parameters(model) == 10
    with pytest.raises(ValueError, match="match no module"):
        linear_probe(model, ["classifier"])
    assert len(full_finetune(model)) == len(list(model.parameters()))

    # fixed-rank LoRA: gates never thresholded, so prune keeps every rank
    lora = Tiny()
    inject(lora, lora_config(rank=3, targets=("head",)))
    assert prune(lora) == {"head": 3}
