"""Settings of one fine-tuning run, with a documented default for each and validation up front."""

from __future__ import annotations

import dataclasses
from dataclasses import InitVar, dataclass, field
from typing import Any

from arena_seg.adapters import ArenaConfig
from arena_seg.errors import InputError
from arena_seg.training.methods import METHODS

#: ARENA options a FinetuneConfig takes and shows flat (``FinetuneConfig(rank=8).rank``); they live in ``.arena``,
#: whose defaults (``ArenaConfig``) are the only ones. ``targets`` stays a training field (None: the network's).
ARENA_OPTIONS = tuple(f.name for f in dataclasses.fields(ArenaConfig) if f.name not in ("targets", "trainable"))


@dataclass
class FinetuneConfig:
    """How to fine-tune; every field has the default the CLI, the server and the benchmarks share.

    The ARENA hyper-parameters (rank, λ, alpha, gate_init, prox, gate_lr_mult, gate_optimizer, lam_warmup,
    lam_ramp, min_rank, refit, lam_weight) are an ``ArenaConfig`` in ``arena``; they may also be given and read flat.
    """

    method: str = "arena"  #: arena | lora | full | linear | bitfit
    arena: ArenaConfig = field(default_factory=ArenaConfig)  #: ARENA's options (LoRA: the same with λ = 0)
    targets: tuple[str, ...] | None = None  #: module-name regexes to adapt; None takes the network's defaults
    #: peak learning rate (AdamW) of adapters and head; 5e-3 reached gallbladder Dice 0.649 where 2e-3 gave 0.529
    #: (default network, qkv + decoder targets, 5 shots, 20 epochs, same seed)
    lr: float = 5e-3
    weight_decay: float = 1e-4  #: AdamW weight decay (never on gates)
    #: passes over the support set; each volume gives `num_samples` patches per pass. 80 is for the few shots a
    #: clinician labels: 2 pancreas shots on the default network reached Dice 0.48 after 40 epochs, 0.57 after 80
    epochs: int = 80
    warmup_epochs: int = 2  #: linear warm-up before the cosine decay
    #: patches per volume per pass (the paper: 6). 2 on a CPU: on the default network a step on 4 patches took 2.6×
    #: one on 2 (18 s vs 7 s an epoch of 2 volumes), so more, shorter steps learn more per second
    num_samples: int = 2
    #: how patch centres are drawn: "posneg" (RandCropByPosNegLabel, organ:background 1:1, the paper's) or
    #: "classes" (RandCropByLabelClasses, an equal share per class: small organs are not drowned by large ones)
    sampler: str = "posneg"
    #: training augmentation (``arena_seg.data.transforms.AUGMENTS``): "light" for few-shot runs, "strong" for
    #: pretraining a foundation network
    augment: str = "light"
    val_every: int = 5  #: epochs between validations (when validation volumes exist)
    patience: int = 4  #: validations without improvement before stopping early
    seed: int = 0  #: seeds patch sampling, head and adapter initialisation
    device: str = "auto"  #: auto | cpu | cuda | cuda:N
    amp: bool = True  #: mixed precision on CUDA (ignored on CPU)
    extra: dict = field(default_factory=dict)  #: caller's notes, copied to the manifest
    # flat ARENA options (None: keep ``arena``'s); see ARENA_OPTIONS
    rank: InitVar[int | None] = None
    lam: InitVar[float | None] = None
    alpha: InitVar[float | None] = None
    gate_init: InitVar[float | None] = None
    prox: InitVar[str | None] = None
    gate_lr_mult: InitVar[float | None] = None
    gate_optimizer: InitVar[str | None] = None
    lam_warmup: InitVar[float | None] = None
    lam_ramp: InitVar[float | None] = None
    min_rank: InitVar[int | None] = None
    refit: InitVar[float | None] = None
    lam_weight: InitVar[str | None] = None

    def __post_init__(self, *flat: Any) -> None:
        problems = []
        changes = {name: value for name, value in zip(ARENA_OPTIONS, flat, strict=True) if value is not None}
        if self.method not in METHODS:
            problems.append(f"method must be one of {', '.join(METHODS)} (got {self.method!r})")
        if changes:
            try:
                self.arena = dataclasses.replace(self.arena, **changes)
            except (TypeError, ValueError):
                # name every bad option, not only the first ArenaConfig stops at
                for name, value in changes.items():
                    try:
                        dataclasses.replace(self.arena, **{name: value})
                    except (TypeError, ValueError) as err:
                        problems.append(f"{name}: {err}")
                if not problems:
                    raise
        if self.sampler not in ("posneg", "classes"):
            problems.append(f"sampler must be 'posneg' or 'classes' (got {self.sampler!r})")
        if self.augment not in ("light", "strong"):
            problems.append(f"augment must be 'light' or 'strong' (got {self.augment!r})")
        if not self.lr > 0:
            problems.append(f"lr must be > 0 (got {self.lr!r})")
        for name in ("epochs", "num_samples", "val_every", "patience"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                problems.append(f"{name} must be an integer ≥ 1 (got {value!r})")
        if not (isinstance(self.warmup_epochs, int) and self.warmup_epochs >= 0):
            problems.append(f"warmup_epochs must be an integer ≥ 0 (got {self.warmup_epochs!r})")
        if problems:
            raise InputError("; ".join(problems))

    def to_dict(self) -> dict:
        """The run's settings for a manifest: ARENA's options flat beside the training ones."""
        arena = self.arena.to_dict()
        rest = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("method", "arena")}
        return {"method": self.method, **{k: arena[k] for k in ARENA_OPTIONS}, **rest}


def _flat_property(name: str) -> property:
    return property(lambda self: getattr(self.arena, name), doc=f"``arena.{name}``")


_FIELDS = {f.name for f in dataclasses.fields(FinetuneConfig)}
assert tuple(n for n in FinetuneConfig.__dataclass_fields__ if n not in _FIELDS) == ARENA_OPTIONS, \
    "FinetuneConfig's flat options are out of step with ArenaConfig's fields"

# InitVar defaults are class attributes; reading them must give the ARENA config's values instead
for _name in ARENA_OPTIONS:
    setattr(FinetuneConfig, _name, _flat_property(_name))
