"""Proximal l1 step on the gates, and two ways to run it after every optimizer step.

The step after the optimizer's is ``g <- sign(g) * max(|g| - t, 0)`` per gate, with ``t`` set by the layer's
``prox`` mode (``lr * λ``, ``λ``, or ``lr * λ / (sqrt(v_hat) + eps)`` in Adam's metric), ``λ`` following the
config's warm-up/ramp schedule, the ``min_rank`` largest gates of a layer exempt, and, in the final refit phase,
no shrinkage but zero gates kept at zero.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.utils.hooks import RemovableHandle

from .layers import ArenaLayer
from .model import arena_layers


def soft_threshold(x: Tensor, threshold: float | Tensor) -> Tensor:
    """``sign(x) * max(|x| - threshold, 0)``, elementwise; ``threshold`` a number or a tensor like ``x``."""
    return torch.sign(x) * torch.clamp(x.abs() - threshold, min=0)


def adam_denominator(optimizer: Optimizer, param: Tensor) -> Tensor | None:
    """``sqrt(v_hat) + eps`` of ``param`` (its shape) as Adam/AdamW divide by it; None before its first step.

    ``v_hat = exp_avg_sq / (1 - beta2 ** step)``, read from the optimizer's own state and group.
    """
    state = optimizer.state.get(param)
    if not state or "exp_avg_sq" not in state:
        return None
    group = next(g for g in optimizer.param_groups if any(p is param for p in g["params"]))
    beta2, eps, step = group["betas"][1], group["eps"], float(state["step"])
    return (state["exp_avg_sq"] / (1 - beta2**step)).sqrt() + eps


def gate_threshold(layer: ArenaLayer, lr: float, lam: float, denominator: Tensor | None = None) -> float | Tensor:
    """The soft threshold of ``layer``'s gates for one step: a number, or a tensor (r,) for ``prox="adam"``."""
    if layer.prox == "fixed":
        return lam
    if layer.prox == "adam":
        if denominator is None:
            # no second moment yet (first step) or no optimizer given: nothing to scale by, so no shrinkage
            return 0.0
        return lr * lam / denominator
    return lr * lam


@torch.no_grad()
def _prox_layer(layer: ArenaLayer, lr: float, lam: float | None, optimizer: Optimizer | None = None,
                progress: float | None = None) -> None:
    if layer.rank == 0:
        return
    config, gate = layer.config, layer.gate
    if config.refitting(progress):
        # refit: keep the support chosen by the last l1 step (zero gates stay zero), shrink nothing
        support = getattr(layer, "support", None)
        if support is not None and support.shape == gate.shape:
            gate.mul_(support)
        return
    lam = (layer.lam if lam is None else lam) * layer.lam_weight * config.lam_factor(progress)
    denominator = adam_denominator(optimizer, gate) if optimizer is not None and layer.prox == "adam" else None
    threshold = gate_threshold(layer, lr, lam, denominator)
    if isinstance(threshold, float) and threshold <= 0:
        layer.support = gate != 0
        return
    threshold = torch.as_tensor(threshold, dtype=gate.dtype, device=gate.device).expand_as(gate).clone()
    if config.min_rank > 0:
        # trimmed l1: the layer's min_rank largest gates carry no penalty, so no layer is shrunk below min_rank
        threshold[gate.abs().topk(min(config.min_rank, layer.rank)).indices] = 0
    gate.copy_(soft_threshold(gate, threshold))
    layer.support = gate != 0


def proximal_step(model: nn.Module, lr: float, lam: float | None = None, optimizer: Optimizer | None = None,
                  progress: float | None = None) -> None:
    """Soft-threshold every gate in place after an optimizer step whose gate lr was ``lr``.

    ``lam`` defaults to each layer's value from its injection config (either way times the layer's
    ``lam_weight``); ``prox``, ``min_rank``, the ``λ`` schedule
    and the refit phase are the layer's config, evaluated at ``progress`` (fraction of the steps done; None: no
    schedule). ``prox="adam"`` needs ``optimizer`` (the one that holds the gates) for its second moments.
    """
    for layer in arena_layers(model).values():
        _prox_layer(layer, lr, lam, optimizer, progress)


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


class _StepCounter:
    """Progress through ``total_steps`` optimizer steps (None when no total is known: no λ schedule)."""

    def __init__(self, total_steps: int | None) -> None:
        self.total, self.done = total_steps, 0

    def advance(self) -> float | None:
        # progress of the step just taken, measured at its start, as the engine does
        progress = None if not self.total else min(1.0, self.done / self.total)
        self.done += 1
        return progress


def register_proximal_hook(optimizer: Optimizer, model: nn.Module, total_steps: int | None = None) -> RemovableHandle:
    """Run the proximal step after every ``optimizer.step()``; returns the handle (``.remove()`` to stop).

    With ``total_steps``, the layers' ``λ`` schedule and refit phase follow the count of steps taken.
    """
    counter = _StepCounter(total_steps)

    def hook(opt: Optimizer, args: Any, kwargs: Any) -> None:
        progress = counter.advance()
        for layer, lr in _gate_lrs(opt, model):
            _prox_layer(layer, lr, None, opt, progress)

    return optimizer.register_step_post_hook(hook)


class ArenaOptimizer:
    """Wraps an optimizer so that ``step()`` is followed by the proximal step on the gates.

    Everything else (``zero_grad``, ``param_groups``, ``state_dict`` ...) is delegated. LR schedulers must be
    built on the inner ``.optimizer`` (they type-check it); the lr is read from the shared param groups. With
    ``total_steps``, the layers' ``λ`` schedule and refit phase follow the count of steps taken.
    """

    def __init__(self, optimizer: Optimizer, model: nn.Module, total_steps: int | None = None) -> None:
        self.optimizer = optimizer
        self.model = model
        self.counter = _StepCounter(total_steps)

    def step(self, closure: Any = None) -> Any:
        loss = self.optimizer.step(closure)
        progress = self.counter.advance()
        for layer, lr in _gate_lrs(self.optimizer, self.model):
            _prox_layer(layer, lr, None, self.optimizer, progress)
        return loss

    def __getattr__(self, name: str) -> Any:
        if name == "optimizer":  # not yet set (e.g. during unpickling): avoid infinite recursion
            raise AttributeError(name)
        return getattr(self.optimizer, name)
