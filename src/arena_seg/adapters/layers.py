"""Adapter wrappers: ``base(x) + scale * B(g * A(x))`` around Linear, Conv3d and ConvTranspose3d."""

from __future__ import annotations

import math
import warnings
from abc import abstractmethod
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import skip_init

from .config import ArenaConfig


class ArenaLayer(nn.Module):
    """Common part of the wrappers: holds ``base_layer``, ``lora_A``, ``lora_B`` and ``gate`` (shape ``(r,)``).

    Subclasses say how to build A and B at a given rank and how to contract them into a weight update.
    ``scale`` is ``alpha / initial rank`` and stays fixed when ranks are pruned.
    """

    #: dimension of ``lora_A.weight`` that indexes the rank (``lora_B.weight`` always uses dim 1)
    a_rank_dim = 0
    #: view of the gate that broadcasts over the rank dim of ``A(x)``
    gate_view: tuple[int, ...] = (-1,)
    base_types: tuple[type[nn.Module], ...] = ()

    def __init__(self, base_layer: nn.Module, config: ArenaConfig) -> None:
        super().__init__()
        if not isinstance(base_layer, self.base_types):
            raise TypeError(f"{type(self).__name__} wraps {self.base_types}, got {type(base_layer).__name__}")
        self.base_layer = base_layer
        self.config = config
        self.scale = config.scale
        self.lam = config.lam
        #: this layer's share of λ (``config.lam_weight``; set by :func:`inject`, which sees every adapted layer)
        self.lam_weight = 1.0
        self.prox = config.prox
        self.merged = False
        self.lora_A, self.lora_B = self._build(config.rank)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        # B = 0 makes the wrapped network compute exactly the base network at step 0.
        nn.init.zeros_(self.lora_B.weight)
        ref = base_layer.weight
        self.gate = nn.Parameter(torch.full((config.rank,), config.gate_init, dtype=ref.dtype, device=ref.device))

    # --- subclass hooks -------------------------------------------------------------------------
    @abstractmethod
    def _make_lora(self, rank: int) -> tuple[nn.Module, nn.Module]:
        """Uninitialised ``(A, B)`` modules of the given rank on the base weight's device and dtype."""

    @abstractmethod
    def _contract(self, b: Tensor, g: Tensor, a: Tensor) -> Tensor:
        """Update in the layout of ``base_layer.weight`` from B (out x r [x 1 1 1]), g (r,), A."""

    def _build(self, rank: int) -> tuple[nn.Module, nn.Module]:
        with warnings.catch_warnings():
            # rank 0 is legitimate here (fully pruned layer); torch warns when constructing empty weights
            warnings.filterwarnings("ignore", message="Initializing zero-element tensors")
            return self._make_lora(rank)

    # --- public API -----------------------------------------------------------------------------
    @property
    def rank(self) -> int:
        """Current rank (number of gates, pruned ones removed)."""
        return self.gate.numel()

    def get_delta_weight(self) -> Tensor:
        """``scale * B diag(g) A`` in the shape of ``base_layer.weight`` (differentiable)."""
        weight = self.base_layer.weight
        if self.rank == 0:
            return torch.zeros_like(weight)
        return self.scale * self._contract(self.lora_B.weight, self.gate, self.lora_A.weight)

    def params_per_rank(self) -> int:
        """Parameters one rank costs: a row of A, a column of B and a gate."""
        return _rank_slice(self.lora_A.weight, self.a_rank_dim) + _rank_slice(self.lora_B.weight, 1) + 1

    @torch.no_grad()
    def merge(self) -> None:
        """Add the update into ``base_layer.weight`` in place; forward then skips the adapter. Idempotent."""
        if not self.merged:
            self.base_layer.weight.copy_(self._updated_weight())
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Subtract the update again (exact up to float rounding). Idempotent."""
        if self.merged:
            self.base_layer.weight.sub_(self.get_delta_weight().to(self.base_layer.weight.dtype))
            self.merged = False

    def forward(self, x: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        if self.merged or self.rank == 0:
            # rank 0 needs the shortcut: a zero-channel conv is not something every backend accepts.
            return self.base_layer(x, *args, **kwargs)
        return self._adapted_forward(x, *args, **kwargs)

    def _adapted_forward(self, x: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        """``base(x) + scale * B(g * A(x))``, the factorised path (convolutions override it with one conv)."""
        out = self.base_layer(x, *args, **kwargs)
        h = self.lora_A(x.to(self.lora_A.weight.dtype), *args, **kwargs)
        return out + (self.scale * self.lora_B(h * self.gate.view(self.gate_view))).to(out.dtype)

    def _updated_weight(self) -> Tensor:
        """``W + ΔW`` in the base weight's dtype (differentiable in the factors)."""
        weight = self.base_layer.weight
        return weight + self.get_delta_weight().to(weight.dtype)

    @torch.no_grad()
    def prune(self) -> int:
        """Drop ranks whose gate is exactly zero; the function is unchanged. Returns the new rank."""
        keep = torch.nonzero(self.gate != 0).flatten()
        if keep.numel() != self.rank:
            self._set_factors(
                self.lora_A.weight.index_select(self.a_rank_dim, keep),
                self.lora_B.weight.index_select(1, keep),
                self.gate.index_select(0, keep),
            )
        return self.rank

    @torch.no_grad()
    def resize(self, rank: int) -> None:
        """Replace A, B and the gate by zero tensors of ``rank`` (used before loading saved factors)."""
        a, b = self._build(rank)
        self._set_factors(torch.zeros_like(a.weight), torch.zeros_like(b.weight), self.gate.new_zeros(rank))

    def _set_factors(self, a_weight: Tensor, b_weight: Tensor, gate: Tensor) -> None:
        flags = (self.lora_A.weight.requires_grad, self.lora_B.weight.requires_grad, self.gate.requires_grad)
        a, b = self._build(gate.numel())
        with torch.no_grad():
            a.weight.copy_(a_weight)
            b.weight.copy_(b_weight)
        a.weight.requires_grad_(flags[0])
        b.weight.requires_grad_(flags[1])
        a.train(self.training)
        b.train(self.training)
        self.lora_A, self.lora_B = a, b
        self.gate = nn.Parameter(gate.detach().clone(), requires_grad=flags[2])

    def _factory(self) -> dict[str, Any]:
        w = self.base_layer.weight
        return {"device": w.device, "dtype": w.dtype}

    def extra_repr(self) -> str:
        return f"rank={self.rank}, scale={self.scale:g}, merged={self.merged}"


def _rank_slice(weight: Tensor, rank_dim: int) -> int:
    """Elements of one rank's slice of a (possibly rank-0) factor weight."""
    return math.prod(n for i, n in enumerate(weight.shape) if i != rank_dim)


class ArenaLinear(ArenaLayer):
    """Wraps ``nn.Linear``: A is ``r x in``, B is ``out x r``; the gate scales the last dim."""

    base_types = (nn.Linear,)

    def _make_lora(self, rank: int) -> tuple[nn.Module, nn.Module]:
        base = self.base_layer
        # skip_init: we set the values ourselves, and default init warns on zero-element (rank-0) tensors.
        a = skip_init(nn.Linear, base.in_features, rank, bias=False, **self._factory())
        b = skip_init(nn.Linear, rank, base.out_features, bias=False, **self._factory())
        return a, b

    def _contract(self, b: Tensor, g: Tensor, a: Tensor) -> Tensor:
        return (b * g) @ a  # (out, r) * (r,) @ (r, in) -> (out, in)


class ArenaConv3d(ArenaLayer):
    """Wraps ``nn.Conv3d``: A is a conv ``in -> r`` with the base geometry, B a 1x1x1 conv ``r -> out``.

    A pointwise conv after a conv is again a conv with the same geometry, so the merge is exact:
    ``delta[o, i, k] = sum_r B[o, r] g[r] A[r, i, k]`` (out x in x kd x kh x kw).
    """

    base_types = (nn.Conv3d,)
    # (r, 1, 1, 1) broadcasts over the channel dim of batched (N, r, D, H, W) and unbatched (r, D, H, W) input
    gate_view = (-1, 1, 1, 1)

    def _make_lora(self, rank: int) -> tuple[nn.Module, nn.Module]:
        base = self.base_layer
        a = skip_init(
            nn.Conv3d, base.in_channels, rank, base.kernel_size, stride=base.stride, padding=base.padding,
            dilation=base.dilation, bias=False, padding_mode=base.padding_mode, **self._factory(),
        )
        b = skip_init(nn.Conv3d, rank, base.out_channels, 1, bias=False, **self._factory())
        return a, b

    def _contract(self, b: Tensor, g: Tensor, a: Tensor) -> Tensor:
        return torch.einsum("or,r,rijkl->oijkl", b[:, :, 0, 0, 0], g, a)

    def _adapted_forward(self, x: Tensor) -> Tensor:
        # one conv with W + ΔW instead of base conv + A conv + B conv: ΔW is weight-sized and cheap to form, while
        # A would run an r-channel 3³ conv at the layer's full resolution (the same function and gradients)
        return self.base_layer._conv_forward(x, self._updated_weight(), self.base_layer.bias)


class ArenaConvTranspose3d(ArenaLayer):
    """Wraps ``nn.ConvTranspose3d``: A is a transposed conv ``in -> r``, B a 1x1x1 conv ``r -> out``.

    Transposed-conv weights are laid out ``in x out x k``, so A's weight is ``in x r x k`` and
    ``delta[i, o, k] = sum_r A[i, r, k] g[r] B[o, r]`` (in x out x kd x kh x kw), again exact.
    """

    a_rank_dim = 1
    base_types = (nn.ConvTranspose3d,)
    gate_view = (-1, 1, 1, 1)

    def _make_lora(self, rank: int) -> tuple[nn.Module, nn.Module]:
        base = self.base_layer
        a = skip_init(
            nn.ConvTranspose3d, base.in_channels, rank, base.kernel_size, stride=base.stride, padding=base.padding,
            output_padding=base.output_padding, dilation=base.dilation, bias=False, **self._factory(),
        )
        b = skip_init(nn.Conv3d, rank, base.out_channels, 1, bias=False, **self._factory())
        return a, b

    def _contract(self, b: Tensor, g: Tensor, a: Tensor) -> Tensor:
        return torch.einsum("irjkl,r,or->iojkl", a, g, b[:, :, 0, 0, 0])

    def _adapted_forward(self, x: Tensor, output_size: list[int] | None = None) -> Tensor:
        # as ArenaConv3d: one transposed conv with W + ΔW
        base = self.base_layer
        pad = base._output_padding(x, output_size, list(base.stride), list(base.padding), list(base.kernel_size),
                                   3, list(base.dilation))
        return F.conv_transpose3d(x, self._updated_weight(), base.bias, base.stride, base.padding, pad, base.groups,
                                  base.dilation)


#: base layer type -> wrapper class; ``inject`` wraps only these (exact-merge guaranteed).
WRAPPERS: dict[type[nn.Module], type[ArenaLayer]] = {
    nn.Linear: ArenaLinear,
    nn.Conv3d: ArenaConv3d,
    nn.ConvTranspose3d: ArenaConvTranspose3d,
}


def wrapper_for(module: nn.Module) -> type[ArenaLayer] | None:
    """Wrapper class for ``module`` (subclasses of the base types included), or None."""
    for base_type, wrapper in WRAPPERS.items():
        if isinstance(module, base_type):
            return wrapper
    return None
