"""Validated configuration for ARENA adapters."""

from __future__ import annotations

import dataclasses
import math
import numbers
import re
from dataclasses import dataclass
from typing import Any

PROX_MODES = ("lr", "fixed")


def _as_patterns(value: Any, field: str) -> tuple[str, ...]:
    # JSON round-trips turn tuples into lists, and a lone string is the commonest slip
    # (tuple("qkv$") would silently become four one-character patterns).
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, (tuple, list)) or not all(isinstance(p, str) for p in value):
        raise ValueError(f"ArenaConfig.{field} must be a tuple of regex strings, got {value!r}")
    for p in value:
        try:
            re.compile(p)
        except re.error as err:
            raise ValueError(f"ArenaConfig.{field}: invalid regex {p!r}: {err}") from err
    return tuple(value)


@dataclass(frozen=True)
class ArenaConfig:
    """ARENA hyper-parameters.

    Every adapted weight ``W`` becomes ``W + scale * B @ diag(g) @ A`` with ``scale = alpha / rank``.

    Attributes:
        rank: initial rank ``r`` of every adapter (default 32). ``scale`` is fixed at injection and is
            *not* changed when ranks are pruned, so pruning never alters the function.
        lam: l1 weight ``λ`` on the gates (default 1e-3, must be >= 0). ``0`` gives fixed-rank LoRA.
        alpha: numerator of the scale (default 32.0, so scale 1 at rank 32).
        targets: regexes over qualified module names (``model.named_modules()``), matched with
            ``re.search``, selecting the layers to wrap (default ``(r"qkv$",)``: Swin attention projections).
        trainable: regexes (``re.search`` over module names) whose parameters stay trainable beside the
            adapters, e.g. the segmentation head (default ``()``: everything else is frozen).
        gate_init: initial value of every gate (default 1.0, must be > 0: a zero gate together with the
            zero-initialised ``B`` would receive no gradient and never move).
        prox: ``"lr"`` soft-thresholds by ``lr * lam`` per step (proximal gradient); ``"fixed"``
            thresholds by ``lam`` per step regardless of the learning rate, as SoRA's code does.
    """

    rank: int = 32
    lam: float = 1e-3
    alpha: float = 32.0
    targets: tuple[str, ...] = (r"qkv$",)
    trainable: tuple[str, ...] = ()
    gate_init: float = 1.0
    prox: str = "lr"

    def __post_init__(self) -> None:
        if isinstance(self.rank, bool) or not isinstance(self.rank, numbers.Integral) or self.rank < 1:
            raise ValueError(f"ArenaConfig.rank must be an integer >= 1, got {self.rank!r}")
        object.__setattr__(self, "rank", int(self.rank))
        for name in ("lam", "alpha", "gate_init"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"ArenaConfig.{name} must be a finite number, got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.lam < 0:
            raise ValueError(f"ArenaConfig.lam must be >= 0, got {self.lam}")
        if self.alpha <= 0:
            raise ValueError(f"ArenaConfig.alpha must be > 0, got {self.alpha}")
        if self.gate_init <= 0:
            raise ValueError(f"ArenaConfig.gate_init must be > 0, got {self.gate_init}")
        if self.prox not in PROX_MODES:
            raise ValueError(f"ArenaConfig.prox must be one of {PROX_MODES}, got {self.prox!r}")
        targets = _as_patterns(self.targets, "targets")
        if not targets:
            raise ValueError("ArenaConfig.targets must contain at least one pattern")
        object.__setattr__(self, "targets", targets)
        object.__setattr__(self, "trainable", _as_patterns(self.trainable, "trainable"))

    @property
    def scale(self) -> float:
        """``alpha / rank``, the fixed multiplier of every update."""
        return self.alpha / self.rank

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        out = dataclasses.asdict(self)
        out["targets"] = list(self.targets)
        out["trainable"] = list(self.trainable)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArenaConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ValueError."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"ArenaConfig.from_dict: unknown keys {unknown}; expected a subset of {sorted(known)}")
        return cls(**data)


def lora_config(**kwargs: Any) -> ArenaConfig:
    """Fixed-rank LoRA as an ARENA config with ``lam=0`` (gates stay, ``prune`` is a no-op)."""
    if kwargs.get("lam", 0.0) != 0.0:
        raise ValueError("lora_config is fixed-rank LoRA: lam must be 0")
    kwargs["lam"] = 0.0
    return ArenaConfig(**kwargs)
