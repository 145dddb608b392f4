"""Fine-tuning methods on one code path: which parameters train, and how the network is wrapped."""

from __future__ import annotations

import re
from collections.abc import Sequence

from torch import nn

from arena_seg import adapters
from arena_seg.errors import InputError

METHODS = ("arena", "lora", "full", "linear", "bitfit")


def prepare(
    model: nn.Module,
    method: str,
    head: str,
    targets: Sequence[str],
    rank: int = 16,
    lam: float = 0.1,
    alpha: float | None = None,
    gate_init: float = 1.0,
    prox: str = "lr",
) -> list[str]:
    """Set up ``model`` in place for ``method``; returns the names of adapted layers (empty when none).

    The head (``head``, a module name) trains in every method, since a new organ needs its own output row.
    ``lora`` is ARENA with λ = 0: same layers, same initialisation, no gate penalty, so no rank is ever pruned.
    """
    if method not in METHODS:
        raise InputError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    head_pattern = rf"^{re.escape(head)}$"
    if method in ("arena", "lora"):
        config = adapters.ArenaConfig(
            rank=rank,
            lam=lam if method == "arena" else 0.0,
            alpha=float(alpha if alpha is not None else rank),
            targets=tuple(targets),
            trainable=(head_pattern,),
            gate_init=gate_init,
            prox=prox,
        )
        return adapters.inject(model, config)
    if method == "full":
        adapters.full_finetune(model)
    elif method == "linear":
        adapters.linear_probe(model, (head_pattern,))
    else:
        adapters.bitfit(model, trainable=(head_pattern,))
    return []


def parameter_groups(model: nn.Module, lr: float, weight_decay: float, gate_lr: float | None = None) -> list[dict]:
    """AdamW groups: gates (own lr, default ``lr``) get no weight decay: the l1 proximal step is their regulariser."""
    gates, others = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (gates if name.endswith("gate") else others).append(param)
    groups = [{"params": others, "lr": lr, "weight_decay": weight_decay, "name": "weights"}]
    if gates:
        groups.append({"params": gates, "lr": gate_lr or lr, "weight_decay": 0.0, "name": "gates"})
    return groups
