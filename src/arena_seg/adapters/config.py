"""Validated configuration for ARENA adapters."""

from __future__ import annotations

import dataclasses
import math
import numbers
import re
from dataclasses import dataclass
from typing import Any

PROX_MODES = ("lr", "fixed", "adam")
LAM_WEIGHTS = ("none", "params")
GATE_OPTIMIZERS = ("adamw", "sgd")


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
    """ARENA hyper-parameters; the one owner of each default (the CLI, the app and the benchmarks read them here).

    Every adapted weight ``W`` becomes ``W + scale * B @ diag(g) @ A`` with ``scale = alpha / rank``.

    Attributes:
        rank: initial rank ``r`` of every adapter (default 64). ``scale`` is fixed at injection and is
            *not* changed when ranks are pruned, so pruning never alters the function.
        lam: l1 weight ``λ`` on the gates (default 1e-4, must be >= 0). ``0`` gives fixed-rank LoRA. Its unit
            depends on ``prox``: a sign-consistency threshold for ``"lr"`` under Adam, loss units for ``"adam"``
            and for ``gate_optimizer="sgd"``.
        alpha: numerator of the scale (default None: ``alpha = rank``, scale 1).
        targets: regexes over qualified module names (``model.named_modules()``), matched with
            ``re.search``, selecting the layers to wrap (default ``(r"qkv$",)``: Swin attention projections).
        trainable: regexes (``re.search`` over module names) whose parameters stay trainable beside the
            adapters, e.g. the segmentation head (default ``()``: everything else is frozen).
        gate_init: initial value of every gate (default 1.0, must be > 0: a zero gate together with the
            zero-initialised ``B`` would receive no gradient and never move).
        prox: threshold of the proximal step after each optimizer step: ``"lr"`` soft-thresholds by ``lr * λ``
            (proximal gradient in the Euclidean metric); ``"fixed"`` by ``λ`` whatever the lr, as SoRA's code does;
            ``"adam"`` (default) by ``lr * λ / (sqrt(v_hat) + eps)`` per gate, the proximal step in Adam's own diagonal
            metric (``v_hat`` the optimizer's bias-corrected ``exp_avg_sq``), so a gate dies only when
            ``|dL/dg| < λ`` on average rather than when its gradient's sign wavers.
        gate_lr_mult: gates learn at the adapters' lr times this (default 10).
        gate_optimizer: ``"adamw"`` (default: gates in the adapters' AdamW, own group) or ``"sgd"`` (plain
            proximal SGD on the gates: ``g <- prox(g - lr_g * grad)``, so the step is proportional to the
            gradient and ``λ`` is in the loss's units).
        lam_warmup: fraction of the optimizer steps with ``λ = 0`` at the start (SoRA-style warm-up, default 0.1).
        lam_ramp: fraction of the steps, after the warm-up, over which ``λ`` rises linearly to its value (default 0.3).
        min_rank: no layer is pruned below this rank (default 1): the ``min_rank`` largest gates of each layer
            are not shrunk (a trimmed l1 penalty), so a layer keeps them unless training itself zeroes them.
        refit: fraction of the steps at the end with the support frozen (default 0.1): no shrinkage, and gates
            already zero stay zero, so the surviving ranks refit without the l1 bias.
        lam_weight: how ``λ`` differs between layers: ``"none"`` (one ``λ`` for every gate) or ``"params"``
            (default; group-lasso weight: a layer's ``λ`` times ``sqrt(p_l / mean p)``, ``p_l`` the parameters one
            of its ranks costs and ``mean p`` that over the adapted layers, so a rank stays if it earns its cost).
    """

    #: start generous and let λ prune (the paper's advice): on the CPU preset rank 64 kept 27 % of its parameters
    #: (about LoRA r16's count) and scored 0.11 (k=1) and 0.17 (k=5) more novel Dice than rank 16 in the same steps
    #: and time (README: CPU preset)
    rank: int = 64
    #: in the loss's units under prox="adam" (times each layer's lam_weight): the gates' mean |dL/dg| on the default
    #: network ran from 1e-7 (deep qkv) to 3e-4 (last decoder conv) after 2 epochs. Unweighted, 1e-5 matched LoRA
    #: but kept 73 % of a rank-64 adapter's parameters; weighted by cost, 1e-4 kept 29 % on validation phantoms
    #: (README: choosing ARENA's defaults)
    lam: float = 1e-4
    alpha: float | None = None
    targets: tuple[str, ...] = (r"qkv$",)
    trainable: tuple[str, ...] = ()
    gate_init: float = 1.0
    #: "lr" (the former default) prunes by the sign consistency of a gate's gradient, whatever its size, and lost
    #: 0.02-0.2 Dice to LoRA in every measurement; "adam" prunes by how much a rank matters to the loss
    prox: str = "adam"
    gate_lr_mult: float = 10.0
    gate_optimizer: str = "adamw"
    #: B starts at 0, so every gate's gradient starts near 0: no penalty until the adapters have learned something
    lam_warmup: float = 0.1
    lam_ramp: float = 0.3
    min_rank: int = 1  #: no layer is pruned away entirely
    refit: float = 0.1  #: the last 10 % of the steps refit the surviving ranks without shrinkage
    #: "params": the decoder convolutions hold most of the adapter's parameters but have the largest gate gradients,
    #: so one λ for all pruned the cheap qkv ranks and kept the costly ones (73 % of a rank-64 adapter kept)
    lam_weight: str = "params"

    def __post_init__(self) -> None:
        if isinstance(self.rank, bool) or not isinstance(self.rank, numbers.Integral) or self.rank < 1:
            raise ValueError(f"ArenaConfig.rank must be an integer >= 1, got {self.rank!r}")
        object.__setattr__(self, "rank", int(self.rank))
        for name in ("lam", "alpha", "gate_init", "gate_lr_mult", "lam_warmup", "lam_ramp", "refit"):
            value = getattr(self, name)
            if value is None and name == "alpha":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"ArenaConfig.{name} must be a finite number, got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.lam < 0:
            raise ValueError(f"ArenaConfig.lam must be >= 0, got {self.lam}")
        for name in ("alpha", "gate_init", "gate_lr_mult"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"ArenaConfig.{name} must be > 0, got {value}")
        for name in ("lam_warmup", "lam_ramp", "refit"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"ArenaConfig.{name} must be a fraction in [0, 1), got {getattr(self, name)}")
        if self.lam_warmup + self.lam_ramp + self.refit >= 1:
            raise ValueError("ArenaConfig: lam_warmup + lam_ramp + refit must leave some steps at full λ (< 1)")
        if isinstance(self.min_rank, bool) or not isinstance(self.min_rank, numbers.Integral) or self.min_rank < 0:
            raise ValueError(f"ArenaConfig.min_rank must be an integer >= 0, got {self.min_rank!r}")
        object.__setattr__(self, "min_rank", int(self.min_rank))
        if self.prox not in PROX_MODES:
            raise ValueError(f"ArenaConfig.prox must be one of {PROX_MODES}, got {self.prox!r}")
        if self.lam_weight not in LAM_WEIGHTS:
            raise ValueError(f"ArenaConfig.lam_weight must be one of {LAM_WEIGHTS}, got {self.lam_weight!r}")
        if self.gate_optimizer not in GATE_OPTIMIZERS:
            raise ValueError(
                f"ArenaConfig.gate_optimizer must be one of {GATE_OPTIMIZERS}, got {self.gate_optimizer!r}")
        if self.prox == "adam" and self.gate_optimizer != "adamw":
            raise ValueError("ArenaConfig.prox='adam' reads Adam's second moments: it needs gate_optimizer='adamw'")
        targets = _as_patterns(self.targets, "targets")
        if not targets:
            raise ValueError("ArenaConfig.targets must contain at least one pattern")
        object.__setattr__(self, "targets", targets)
        object.__setattr__(self, "trainable", _as_patterns(self.trainable, "trainable"))

    @property
    def scale(self) -> float:
        """``alpha / rank`` (1 when ``alpha`` is None), the fixed multiplier of every update."""
        return 1.0 if self.alpha is None else self.alpha / self.rank

    def lam_factor(self, progress: float | None) -> float:
        """Share of ``λ`` in force at ``progress`` (fraction of the optimizer steps done; None: 1).

        0 during the warm-up, a linear ramp to 1, 1 until the refit phase, and 0 in it (the support is frozen).
        """
        if progress is None:
            return 1.0
        if progress < self.lam_warmup or self.refitting(progress):
            return 0.0
        if self.lam_ramp > 0 and progress < self.lam_warmup + self.lam_ramp:
            return (progress - self.lam_warmup) / self.lam_ramp
        return 1.0

    def lam_at(self, progress: float | None) -> float:
        """``λ`` in force at ``progress``: ``lam * lam_factor(progress)``."""
        return self.lam * self.lam_factor(progress)

    def refitting(self, progress: float | None) -> bool:
        """Whether ``progress`` falls in the final refit phase (zero gates stay zero, no shrinkage)."""
        return progress is not None and self.refit > 0 and progress >= 1 - self.refit

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
