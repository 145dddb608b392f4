"""Baseline method selectors that share ARENA's training code path (only ``requires_grad`` changes)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from torch import nn

from .model import in_trainable_module


def _select(model: nn.Module, keep) -> list[str]:
    names = []
    for name, p in model.named_parameters():
        p.requires_grad_(bool(keep(name)))
        if p.requires_grad:
            names.append(name)
    return names


def _check_patterns(model: nn.Module, patterns: Sequence[str]) -> tuple[str, ...]:
    patterns = (patterns,) if isinstance(patterns, str) else tuple(patterns)
    names = [n for n, _ in model.named_modules() if n]
    missing = [p for p in patterns if not any(re.search(p, n) for n in names)]
    if missing:
        raise ValueError(f"patterns {missing} match no module of the model")
    return patterns


def bitfit(model: nn.Module, trainable: Sequence[str] = ()) -> list[str]:
    """Train only biases plus modules matching ``trainable`` (``re.search``); returns trainable parameter names."""
    patterns = _check_patterns(model, trainable)
    return _select(model, lambda n: n.rsplit(".", 1)[-1] == "bias" or in_trainable_module(n, patterns))


def linear_probe(model: nn.Module, head_patterns: Sequence[str]) -> list[str]:
    """Train only the modules matching ``head_patterns``; returns trainable parameter names."""
    patterns = _check_patterns(model, head_patterns)
    if not patterns:
        raise ValueError("linear_probe needs at least one head pattern")
    return _select(model, lambda n: in_trainable_module(n, patterns))


def full_finetune(model: nn.Module) -> list[str]:
    """Train every parameter; returns their names."""
    return _select(model, lambda n: True)
