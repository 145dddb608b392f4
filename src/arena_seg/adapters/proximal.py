"""Proximal l1 step on the gates, and two ways to run it after every optimizer step."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.utils.hooks import RemovableHandle

from .layers import ArenaLayer
from .model import arena_layers


def soft_threshold(x: Tensor, threshold: float) -> Tensor:
    """``sign(x) * max(|x| - threshold, 0)``, elementwise (same shape as ``x``)."""
    return torch.sign(x) * torch.clamp(x.abs() - threshold, min=0)


def _threshold(layer: ArenaLayer, lr: float, lam: float | None) -> float:
    lam = layer.lam if lam is None else lam
    return lr * lam if layer.prox == "lr" else lam


@torch.no_grad()
def _prox_layer(layer: ArenaLayer, lr: float, lam: float | None) -> None:
    threshold = _threshold(layer, lr, lam)
    if threshold > 0 and layer.rank > 0:
        layer.gate.copy_(soft_threshold(layer.gate, threshold))


def proximal_step(model: nn.Module, lr: float, lam: float | None = None) -> None:
    """Soft-threshold every gate in place: by ``lr * lam`` (``prox="lr"``) or ``lam`` (``prox="fixed"``).

    ``lam`` defaults to each layer's value from its injection config; ``prox`` is always the layer's.
    """
    for layer in arena_layers(model).values():
        _prox_layer(layer, lr, lam)


def _gate_lrs(optimizer: Optimizer, model: nn.Module) -> list[tuple[ArenaLayer, float]]:
    # Read the lr at call time from the group holding each gate, so schedulers and per-group lrs are honoured.
    lr_of = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    out = []
    for name, layer in arena_layers(model).items():
        if id(layer.gate) in lr_of:
            out.append((layer, float(lr_of[id(layer.gate)])))
        elif layer.gate.requires_grad:
            raise RuntimeError(
                f"the gate of {name!r} is not in the optimizer; build the optimizer after inject(), and again "
                "after prune() or load_adapter(), which replace the gate parameters"
            )
    return out


def register_proximal_hook(optimizer: Optimizer, model: nn.Module) -> RemovableHandle:
    """Run the proximal step after every ``optimizer.step()``; returns the handle (``.remove()`` to stop)."""

    def hook(opt: Optimizer, args: Any, kwargs: Any) -> None:
        for layer, lr in _gate_lrs(opt, model):
            _prox_layer(layer, lr, None)

    return optimizer.register_step_post_hook(hook)


class ArenaOptimizer:
    """Wraps an optimizer so that ``step()`` is followed by the proximal step on the gates.

    Everything else (``zero_grad``, ``param_groups``, ``state_dict`` ...) is delegated. LR schedulers must be
    built on the inner ``.optimizer`` (they type-check it); the lr is read from the shared param groups.
    """

    def __init__(self, optimizer: Optimizer, model: nn.Module) -> None:
        self.optimizer = optimizer
        self.model = model

    def step(self, closure: Any = None) -> Any:
        loss = self.optimizer.step(closure)
        for layer, lr in _gate_lrs(self.optimizer, self.model):
            _prox_layer(layer, lr, None)
        return loss

    def __getattr__(self, name: str) -> Any:
        if name == "optimizer":  # not yet set (e.g. during unpickling): avoid infinite recursion
            raise AttributeError(name)
        return getattr(self.optimizer, name)
