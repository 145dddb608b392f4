"""The few-shot protocol: presets, the methods compared, and how each seed draws its support set."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace

from arena_seg.errors import InputError
from arena_seg.training.methods import METHODS

from .peers import PEERS

RANKED = ("arena", "lora", *PEERS)  # methods that take a rank
ALL_METHODS = (*METHODS, *PEERS)


@dataclass(frozen=True, order=True)
class MethodSpec:
    """One method at one (initial) rank; ``rank`` is None for full, linear and BitFit."""

    method: str
    rank: int | None = None

    @property
    def label(self) -> str:
        return f"{self.method}-r{self.rank}" if self.rank is not None else self.method

    @property
    def is_peer(self) -> bool:
        return self.method in PEERS


def parse_methods(items: list[str]) -> list[MethodSpec]:
    """``["arena:8,16", "lora-r4", "full"]`` -> method specs, in the order given, without duplicates."""
    out: list[MethodSpec] = []
    for item in items:
        for token in item.split():
            name, sep, ranks = token.partition(":")
            if not sep and "-r" in name and name.rsplit("-r", 1)[1].isdigit():
                name, ranks = name.rsplit("-r", 1)
            if name not in ALL_METHODS:
                raise InputError(f"--methods {token!r}: unknown method {name!r}; choose from {', '.join(ALL_METHODS)}")
            if name in RANKED:
                if not ranks:
                    raise InputError(f"--methods {token!r}: {name} needs ranks, e.g. {name}:16 or {name}:8,32")
                try:
                    values = [int(r) for r in ranks.split(",") if r]
                except ValueError:
                    raise InputError(f"--methods {token!r}: ranks must be integers") from None
                if not values or min(values) < 1:
                    raise InputError(f"--methods {token!r}: ranks must be ≥ 1")
                specs = [MethodSpec(name, r) for r in values]
            elif ranks:
                raise InputError(f"--methods {token!r}: {name} takes no rank")
            else:
                specs = [MethodSpec(name)]
            out.extend(s for s in specs if s not in out)
    if not out:
        raise InputError("--methods: give at least one method")
    return out


@dataclass(frozen=True)
class Preset:
    """Everything a few-shot benchmark varies; CLI options override single fields."""

    name: str
    shots: tuple[int, ...]
    seeds: tuple[int, ...]
    organs: tuple[str, ...]  # phantom organs to learn together (base and novel)
    methods: tuple[str, ...]
    epochs: int
    num_samples: int  # patches per support volume per epoch
    lr: float = 2e-3
    lam: float | None = None  # ARENA's λ; None: the ArenaConfig default (the app's and CLI's)
    spacing: float = 3.0  # phantom voxel size (mm)
    pool: int = 10  # phantom volumes the support sets are drawn from
    test: int = 10  # held-out volumes every run is scored on
    #: optimizer steps per run whatever k (epochs = ceil(steps / k)), so 1 shot trains as long as 5; None: epochs
    steps: int | None = None

    def with_overrides(self, **changes) -> Preset:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def epochs_for(self, k: int) -> int:
        """Epochs of a run on ``k`` support volumes (one optimizer step per volume per epoch)."""
        return self.epochs if self.steps is None else max(1, math.ceil(self.steps / k))


QUICK = Preset(
    name="quick",
    shots=(1, 5),
    seeds=(0,),
    organs=("gallbladder", "liver"),
    methods=("arena:8,32", "lora:16", "full", "linear"),
    epochs=5,
    num_samples=2,
    pool=5,
    test=2,
)

FULL = Preset(
    name="full",
    shots=(1, 5, 10),
    seeds=(0, 1, 2),
    organs=("liver", "spleen", "kidney_right", "kidney_left", "aorta", "stomach",
            "pancreas", "gallbladder", "inferior_vena_cava", "urinary_bladder"),
    methods=("arena:8,16,32,64", "lora:4,16,64", "full", "linear", "bitfit", "peft-lora:16", "peft-adalora:16"),
    epochs=40,
    num_samples=4,
)

#: issue 14's CPU preset (about 2.6 h on 2 cores, --jobs 2): can the methods be told apart? Two novel organs and a
#: base one, k 1 and 5, 3 seeds, ARENA and LoRA at 3 initial ranks each, LoRA r32 as the smallest LoRA with more
#: parameters than ARENA r64 keeps, full fine-tuning as the ceiling, 160 steps a run (the app's 80 epochs on 2 shots;
#: LoRA's validation Dice had levelled off by then on the default network's version 1, not on version 2: README) at
#: the engine's lr and ARENA's default settings
CPU = Preset(
    name="cpu",
    shots=(1, 5),
    seeds=(0, 1, 2),
    organs=("gallbladder", "pancreas", "liver"),
    methods=("arena:8,16,64", "lora:4,16,32,64", "full"),
    epochs=32,
    num_samples=2,
    lr=5e-3,
    lam=None,
    pool=10,
    test=6,
    steps=160,
)

PRESETS = {p.name: p for p in (QUICK, CPU, FULL)}


def draw_support(pool: list[dict], k: int, seed: int) -> list[dict]:
    """The ``k`` support volumes of ``seed``: a seeded draw without replacement, kept in pool order."""
    if k > len(pool):
        raise InputError(f"{k} shots need {k} training volumes; the pool holds {len(pool)}")
    picked = set(random.Random(1000 + seed).sample(range(len(pool)), k))
    return [item for i, item in enumerate(pool) if i in picked]


def organ_groups(organs: list[str], known: dict[str, int]) -> dict[str, str]:
    """``base`` for organs the foundation network was trained on (``known``: its labels), else ``novel``."""
    return {name: "base" if name in known else "novel" for name in organs}
