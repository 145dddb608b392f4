import pytest
import torch
from torch import nn

from arena_seg.adapters import ArenaConfig, ArenaConv3d, ArenaConvTranspose3d, ArenaLinear

from .helpers import max_diff, randomize

F64 = torch.float64


def _wrap(base: nn.Module, rank: int = 4, alpha: float = 8.0):
    cls = {nn.Linear: ArenaLinear, nn.Conv3d: ArenaConv3d, nn.ConvTranspose3d: ArenaConvTranspose3d}[type(base)]
    layer = cls(base, ArenaConfig(rank=rank, alpha=alpha, targets=("x",)))
    randomize(layer, seed=rank)
    return layer


def _check_merge(base: nn.Module, x: torch.Tensor, tol: float, **forward_kwargs) -> None:
    torch.manual_seed(0)
    w0 = base.weight.detach().clone()
    y_base = base(x, **forward_kwargs).detach()
    layer = _wrap(base)
    y = layer(x, **forward_kwargs)
    assert y.shape == y_base.shape
    # the update must be far from zero, otherwise merge equivalence proves nothing
    assert max_diff(y, y_base) > 0.1
    assert layer.get_delta_weight().shape == w0.shape
    layer.merge()
    assert layer.merged
    assert max_diff(layer(x, **forward_kwargs), y) <= tol
    assert max_diff(base(x, **forward_kwargs), y) <= tol  # the plain base layer now carries the update
    layer.merge()  # idempotent
    layer.unmerge()
    assert not layer.merged
    assert max_diff(base.weight, w0) <= tol
    assert max_diff(layer(x, **forward_kwargs), y) <= tol


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(("dtype", "tol"), [(F64, 1e-5), (torch.float32, 1e-4)])
def test_linear_merge(bias, dtype, tol):
    torch.manual_seed(1)
    base = nn.Linear(12, 10, bias=bias).to(dtype)
    _check_merge(base, torch.randn(3, 5, 12, dtype=dtype), tol)


@pytest.mark.parametrize(
    "kw",
    [
        {"kernel_size": 3, "padding": 1},
        {"kernel_size": 1},
        {"kernel_size": (1, 1, 3), "padding": (0, 0, 1)},
        {"kernel_size": 3, "stride": 2, "padding": 1},
        {"kernel_size": 3, "padding": 2, "dilation": 2},
        {"kernel_size": (3, 1, 2), "stride": (1, 2, 1), "padding": (1, 0, 1), "dilation": (2, 1, 1)},
        {"kernel_size": 3, "padding": "same"},
        {"kernel_size": 3, "padding": 1, "padding_mode": "reflect"},
        {"kernel_size": 3, "padding": 1, "padding_mode": "circular"},
    ],
)
@pytest.mark.parametrize("bias", [True, False])
def test_conv3d_merge(kw, bias):
    torch.manual_seed(2)
    base = nn.Conv3d(3, 5, bias=bias, **kw).to(F64)
    _check_merge(base, torch.randn(2, 3, 6, 7, 8, dtype=F64), 1e-5)


def test_conv3d_merge_float32():
    torch.manual_seed(3)
    base = nn.Conv3d(3, 5, 3, stride=2, padding=1)
    _check_merge(base, torch.randn(1, 3, 8, 8, 8), 1e-4)


@pytest.mark.parametrize(
    "kw",
    [
        {"kernel_size": 2, "stride": 2},
        {"kernel_size": 3, "stride": 2, "padding": 1, "output_padding": 1},
        {"kernel_size": 3, "dilation": 2},
        {"kernel_size": (1, 2, 3), "stride": (1, 2, 2), "padding": (0, 0, 1), "output_padding": (0, 1, 0)},
    ],
)
@pytest.mark.parametrize("bias", [True, False])
def test_conv_transpose3d_merge(kw, bias):
    torch.manual_seed(4)
    base = nn.ConvTranspose3d(4, 3, bias=bias, **kw).to(F64)
    _check_merge(base, torch.randn(2, 4, 4, 5, 3, dtype=F64), 1e-5)


def test_conv_transpose3d_output_size_and_float32():
    torch.manual_seed(5)
    base = nn.ConvTranspose3d(4, 3, 3, stride=2, padding=1)
    x = torch.randn(1, 4, 4, 4, 4)
    _check_merge(base, x, 1e-4, output_size=(8, 8, 8))
    assert base(x, output_size=(8, 8, 8)).shape[-3:] == (8, 8, 8)


@pytest.mark.parametrize(
    ("base", "x"),
    [
        (nn.Linear(6, 4), torch.randn(2, 6)),
        (nn.Conv3d(2, 3, 3, padding=1), torch.randn(1, 2, 4, 4, 4)),
        (nn.ConvTranspose3d(2, 3, 2, stride=2), torch.randn(1, 2, 3, 3, 3)),
    ],
)
def test_fresh_adapter_is_identity_and_shapes(base, x):
    y = base(x)
    cls = {nn.Linear: ArenaLinear, nn.Conv3d: ArenaConv3d, nn.ConvTranspose3d: ArenaConvTranspose3d}[type(base)]
    layer = cls(base, ArenaConfig(rank=5, alpha=10.0, gate_init=0.7, targets=("x",)))
    assert torch.equal(layer(x), y)
    assert layer.rank == 5 and layer.scale == 2.0
    assert torch.equal(layer.gate, torch.full((5,), 0.7))
    assert torch.count_nonzero(layer.lora_B.weight) == 0
    assert torch.count_nonzero(layer.lora_A.weight) == layer.lora_A.weight.numel()


def test_linear_delta_is_scaled_gated_product():
    layer = _wrap(nn.Linear(6, 4).to(F64), rank=3, alpha=6.0)
    a, b, g = layer.lora_A.weight, layer.lora_B.weight, layer.gate
    expected = sum(2.0 * g[r] * torch.outer(b[:, r], a[r]) for r in range(3))
    assert max_diff(layer.get_delta_weight(), expected) <= 1e-12


def test_unbatched_conv_input():
    base = nn.Conv3d(2, 3, 3, padding=1).to(F64)
    layer = _wrap(base)
    x = torch.randn(2, 4, 4, 4, dtype=F64)
    assert max_diff(layer(x), layer(x[None])[0]) <= 1e-12


@pytest.mark.parametrize(
    ("base", "x", "a_shape", "b_shape"),
    [
        (nn.Linear(6, 4), torch.randn(2, 6), (2, 6), (4, 2)),
        (nn.Conv3d(2, 3, 3, padding=1), torch.randn(1, 2, 4, 4, 4), (2, 2, 3, 3, 3), (3, 2, 1, 1, 1)),
        (nn.ConvTranspose3d(2, 3, 2, stride=2), torch.randn(1, 2, 3, 3, 3), (2, 2, 2, 2, 2), (3, 2, 1, 1, 1)),
    ],
)
def test_prune_shrinks_and_keeps_outputs(base, x, a_shape, b_shape):
    layer = _wrap(base.to(F64), rank=5)
    x = x.to(F64)
    with torch.no_grad():
        layer.gate[[0, 2, 3]] = 0.0
    layer.lora_B.weight.requires_grad_(False)
    y = layer(x)
    assert layer.prune() == 2
    assert tuple(layer.lora_A.weight.shape) == a_shape
    assert tuple(layer.lora_B.weight.shape) == b_shape
    assert layer.gate.shape == (2,)
    assert max_diff(layer(x), y) <= 1e-6
    assert not layer.lora_B.weight.requires_grad and layer.lora_A.weight.requires_grad and layer.gate.requires_grad

    # down to rank 0: forward, delta and merge still work and give the base layer back
    with torch.no_grad():
        layer.gate.zero_()
    assert layer.prune() == 0
    assert layer.gate.shape == (0,)
    assert torch.equal(layer(x), base(x))
    assert torch.count_nonzero(layer.get_delta_weight()) == 0
    w = base.weight.detach().clone()
    layer.merge()
    assert torch.equal(base.weight, w) and torch.equal(layer(x), base(x))


@pytest.mark.parametrize(
    ("base", "x", "kwargs"),
    [
        (nn.Conv3d(3, 2, 3, stride=2, padding=1), torch.randn(2, 3, 7, 6, 5), {}),
        (nn.Conv3d(3, 2, 3, padding=2, dilation=2, bias=False), torch.randn(1, 3, 6, 6, 6), {}),
        (nn.ConvTranspose3d(3, 2, 2, stride=2), torch.randn(2, 3, 3, 4, 2), {}),
        (nn.ConvTranspose3d(3, 2, 3, stride=2, padding=1), torch.randn(1, 3, 4, 4, 4), {"output_size": (8, 8, 8)}),
    ],
)
def test_conv_forward_through_updated_weight_equals_the_factorised_path(base, x, kwargs):
    """Conv wrappers run one conv with W + ΔW; output and gradients must be those of base + B(g·A(x))."""
    from arena_seg.adapters.layers import ArenaLayer

    layer = _wrap(base.to(F64), rank=3)
    base.weight.requires_grad_(False)
    x = x.to(F64)
    factors = (layer.lora_A.weight, layer.lora_B.weight, layer.gate)
    results = []
    for forward in (layer.forward, lambda t, **kw: ArenaLayer._adapted_forward(layer, t, **kw)):
        y = forward(x, **kwargs)
        grads = torch.autograd.grad(y.square().sum(), factors)
        results.append((y, grads))
    (fused, fused_grads), (factorised, factorised_grads) = results
    assert fused.shape == factorised.shape and max_diff(fused, base(x, **kwargs)) > 0.1
    assert max_diff(fused, factorised) <= 1e-10
    for a, b in zip(fused_grads, factorised_grads, strict=True):
        assert max_diff(a, b) <= 1e-9 * max(1.0, b.abs().max().item())
