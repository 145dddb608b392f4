"""Options of the `arena` trainer: what Slicer shows (``/info`` → ``trainers.arena.config``) and their checks.

Slicer's options table sends every key of the config back with POST /train/arena (the first item of a list,
numbers typed like the defaults). Everything is checked in the request path, before a task is submitted, and a
bad value is answered 400 with the option's name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from arena_seg.errors import InputError
from arena_seg.training.config import FinetuneConfig
from arena_seg.training.methods import METHODS
from lib.conf import AppConf, device_choices, resolve_device

#: keys MONAI Label or its clients add to a train request; accepted and ignored
FRAMEWORK_KEYS = frozenset({"model", "client_id", "gpus", "multi_gpu", "local_rank", "bundle_path", "name"})
#: keys the app itself adds (the auto-trainer marks its runs); accepted, not shown in Slicer's options
INTERNAL_KEYS = frozenset({"auto_train"})


def default_options(conf: AppConf) -> dict[str, Any]:
    """The trainer's config as /info shows it (lists: the first item is the default)."""
    d = FinetuneConfig()
    return {
        "organs": ",".join(conf.labels),
        "warm_start": False,
        "max_epochs": conf.epochs,
        "method": list(METHODS),
        "rank": d.rank,
        "lam": d.lam,
        "lr": d.lr,
        "val_split": 0.2,
        "num_samples": d.num_samples,
        "seed": d.seed,
        "device": ["auto", *device_choices()],
    }


@dataclass
class TrainOptions:
    """A checked request: the engine's config, how many labelled scans to hold out for validation, the organs named
    (checked against the datastore by the trainer) and whether to start from their latest adapter."""

    config: FinetuneConfig
    val_split: float
    values: dict[str, Any]
    organs: tuple[str, ...] = ()
    warm_start: bool = False
    auto_train: bool = False


#: upper bounds of the options (README: train options); beyond them a run would not end or not fit in memory
MAX_EPOCHS, MAX_RANK, MAX_SAMPLES, MAX_SEED, MAX_LAM = 10_000, 512, 64, 2**32 - 1, 1000.0


def _as_int(key: str, value: Any, low: int, high: int) -> int:
    message = f"train option {key}: give an integer from {low} to {high} (got {str(value)[:40]!r})"
    if isinstance(value, bool):
        raise InputError(message)
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise InputError(message) from None
    if not math.isfinite(number) or not number.is_integer() or not low <= number <= high:
        raise InputError(message)
    return int(number)


def _as_float(key: str, value: Any, low: float, high: float | None = None, open_low: bool = False) -> float:
    bounds = f"{'>' if open_low else '≥'} {low:g}" + (f" and < {high:g}" if high is not None else "")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"train option {key}: give a number {bounds} (got {str(value)[:40]!r})") from None
    if isinstance(value, bool) or not math.isfinite(number) or number < low or (open_low and number == low) or (
        high is not None and number >= high
    ):
        raise InputError(f"train option {key}: give a number {bounds} (got {value!r})")
    return number


def parse_options(request: dict[str, Any], conf: AppConf) -> TrainOptions:
    """Check a train request (defaults for what it leaves out); raises InputError naming the bad option."""
    defaults = default_options(conf)
    unknown = sorted(k for k in request if k not in defaults and k not in FRAMEWORK_KEYS | INTERNAL_KEYS)
    if unknown:
        raise InputError(f"unknown train option(s) {', '.join(unknown)}; the options are {', '.join(defaults)}")
    merged = {k: (v[0] if isinstance(v, list) else v) for k, v in defaults.items()}
    for key, value in request.items():
        if key in defaults:
            merged[key] = value[0] if isinstance(value, list) and value else value
    method = str(merged["method"]).strip().lower()
    if method not in METHODS:
        raise InputError(f"train option method: give one of {', '.join(METHODS)} (got {merged['method']!r})")
    device = str(merged["device"])[:40]
    resolve_device(device)  # raises when e.g. cuda is asked for on a CPU server
    values = {
        "max_epochs": _as_int("max_epochs", merged["max_epochs"], 1, MAX_EPOCHS),
        "method": method,
        "rank": _as_int("rank", merged["rank"], 1, MAX_RANK),
        "lam": _as_float("lam", merged["lam"], 0.0, MAX_LAM),
        "lr": _as_float("lr", merged["lr"], 0.0, 1.0, open_low=True),
        "val_split": _as_float("val_split", merged["val_split"], 0.0, 1.0),
        "num_samples": _as_int("num_samples", merged["num_samples"], 1, MAX_SAMPLES),
        "seed": _as_int("seed", merged["seed"], 0, MAX_SEED),
        "device": device,
    }
    organs = parse_organs(request.get("organs", defaults["organs"]))
    values.update(organs=",".join(organs), warm_start=_as_bool("warm_start", merged["warm_start"]))
    config = FinetuneConfig(method=method, rank=values["rank"], lam=values["lam"], lr=values["lr"],
                            epochs=values["max_epochs"], num_samples=values["num_samples"], seed=values["seed"],
                            device=device, warmup_epochs=min(2, values["max_epochs"] - 1))
    return TrainOptions(config=config, val_split=values["val_split"], values=values, organs=organs,
                        warm_start=values["warm_start"], auto_train=_as_bool("auto_train", request.get("auto_train")))


def parse_organs(value: Any) -> tuple[str, ...]:
    """The ``organs`` option: "a,b" or ["a", "b"] (a REST client may send a list; Slicer sends the text)."""
    items = value if isinstance(value, list | tuple) else [value]
    if not all(isinstance(v, str) for v in items if v is not None):
        raise InputError(f"train option organs: give organ names, comma-separated (got {str(value)[:80]!r})")
    names = [n.strip() for v in items if v for n in v.split(",") if n.strip()]
    if any(len(n) > 64 for n in names) or len(names) > 64:
        raise InputError("train option organs: at most 64 names of at most 64 characters")
    return tuple(dict.fromkeys(names))


def _as_bool(key: str, value: Any) -> bool:
    if value in (None, "", False, 0, "false", "False", "0", "no"):
        return False
    if value in (True, 1, "true", "True", "1", "yes"):
        return True
    raise InputError(f"train option {key}: give true or false (got {str(value)[:40]!r})")


def split_items(items: list[dict], val_split: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Hold out floor(n·val_split) scans for validation (at least one stays for training); seeded."""
    import random

    n_val = min(int(len(items) * val_split), len(items) - 1)
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    val = [items[i] for i in sorted(order[:n_val])]
    train = [items[i] for i in sorted(order[n_val:])]
    return train, val
