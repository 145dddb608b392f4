"""Reading foreign checkpoints strictly, and our own network folder format.

Our format is a folder with
  network.safetensors  the state_dict
  network.json         {"format", "version", "name", "arch", "labels", "preprocessing", "targets", "head",
                        "background_channel", "activation", "metadata", "sha256"} (sha256 of network.safetensors)
"""

from __future__ import annotations

import hashlib
import json
import pickle
import re
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from arena_seg.files import atomic_write

from .spec import FoundationSpec, Preprocessing, build_network

WEIGHTS_FILE = "network.safetensors"
CONFIG_FILE = "network.json"
FORMAT = "arena-seg-network"
VERSION = 1
_SHOW = 5  # keys listed per kind of mismatch in error messages


class CheckpointError(ValueError):
    """A checkpoint (or network folder) exists but cannot be used; the message names the file."""


class CheckpointWarning(UserWarning):
    """A checkpoint was loaded, but part of it was left out (the message names the file and the keys)."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _few(keys: Iterable[str]) -> str:
    keys = list(keys)
    more = f", ... (+{len(keys) - _SHOW} more)" if len(keys) > _SHOW else ""
    return ", ".join(keys[:_SHOW]) + more


def read_torch_file(path: Path) -> Any:
    """torch.load with weights_only=True (tensors and plain containers only; no arbitrary code)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path}: holds Python objects other than tensors, which are not unpickled (weights_only); "
            f"re-save just the state_dict ({err})"
        ) from err
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({type(err).__name__}: {err})") from err


def extract_state_dict(obj: Any, source: Path | str, containers: tuple[str, ...] = ("state_dict", "net", "model")):
    """The state_dict in a loaded checkpoint: the object itself, or under one of `containers` (nested allowed)."""
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return dict(obj)
    if isinstance(obj, dict):
        for key in containers:
            if isinstance(obj.get(key), dict):
                return extract_state_dict(obj[key], source, containers)
        raise CheckpointError(
            f"{source}: no state_dict found (top-level keys: {_few(map(str, obj))}; looked for a flat "
            f"name->tensor dict or one under {containers})"
        )
    raise CheckpointError(f"{source}: expected a dict of tensors, found {type(obj).__name__}")


def remap_keys(state: dict[str, torch.Tensor], rule: Callable[[str], str], source: Path | str) -> dict:
    out: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    for key, value in state.items():
        new = rule(key)
        if new in out:
            raise CheckpointError(f"{source}: keys {origin[new]!r} and {key!r} both map to {new!r}")
        out[new], origin[new] = value, key
    return out


def load_state_strict(
    model: nn.Module,
    state: dict[str, torch.Tensor],
    source: Path | str,
    optional: str | None = None,
    extra: str = "error",
) -> nn.Module:
    """Load `state` into `model`: every network key must be in `state`, with its shape.

    Model keys matching the regex `optional` (deterministic buffers) may be absent from `state`. Checkpoint keys
    the network does not have are an error (`extra="error"`), or are left out with a :class:`CheckpointWarning`
    that lists them (`extra="warn"`, for checkpoints whose own loader ignores them).
    """
    if extra not in ("error", "warn"):
        raise ValueError(f"extra must be 'error' or 'warn', got {extra!r}")
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not (optional and re.search(optional, k))]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
        for k in state
        if k in expected and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    errors = []
    if missing:
        errors.append(f"{len(missing)} network key(s) missing from the checkpoint: {_few(missing)}")
    if unexpected and extra == "error":
        errors.append(f"{len(unexpected)} checkpoint key(s) the network does not have: {_few(unexpected)}")
    if shapes:
        errors.append(f"{len(shapes)} shape mismatch(es) (checkpoint vs network): {_few(shapes)}")
    if errors:
        raise CheckpointError(f"{source}: checkpoint does not match the {type(model).__name__}: " + "; ".join(errors))
    if unexpected:
        warnings.warn(CheckpointWarning(
            f"{source}: {len(unexpected)} checkpoint key(s) the {type(model).__name__} does not have were left out: "
            + ", ".join(unexpected)), stacklevel=2)
        state = {k: v for k, v in state.items() if k in expected}
    model.load_state_dict(state, strict=False)  # all keys checked above; only `optional` ones may be left
    return model


def save_network(
    model: nn.Module,
    path: Path,
    *,
    name: str,
    arch: dict,
    labels: dict[str, int],
    preprocessing: Preprocessing,
    targets,
    head,
    metadata: dict | None = None,
    background_channel: int | None = 0,
    activation: str = "softmax",
) -> None:
    """Write `model` to the folder `path` (network.safetensors + network.json), replacing what is there."""
    from safetensors.torch import save_file

    path = Path(path)
    model.get_submodule(head)  # fail early on a wrong head name
    config = {
        "format": FORMAT,
        "version": VERSION,
        "name": name,
        "arch": arch,
        "labels": {str(k): int(v) for k, v in labels.items()},
        "preprocessing": preprocessing.to_dict(),
        "targets": list(targets),
        "head": head,
        "background_channel": background_channel,
        "activation": activation,
        "metadata": metadata or {},
    }
    try:
        config = json.loads(json.dumps(config))  # JSON-able now, not at load time
    except (TypeError, ValueError) as err:
        raise ValueError(f"network description for {path} is not JSON-able: {err}") from err
    path.mkdir(parents=True, exist_ok=True)
    # clone: safetensors refuses tensors sharing storage (views, tied weights)
    state = {k: v.detach().to("cpu").clone().contiguous() for k, v in model.state_dict().items()}
    weights = path / WEIGHTS_FILE
    atomic_write(weights, lambda tmp: save_file(state, str(tmp), metadata={"format": FORMAT}))
    config["sha256"] = sha256_file(weights)
    atomic_write(path / CONFIG_FILE, lambda tmp: tmp.write_text(json.dumps(config, indent=2) + "\n"))


def read_network_config(path: Path) -> dict[str, Any]:
    cfg_path = Path(path) / CONFIG_FILE
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path}: missing (a network folder holds {CONFIG_FILE} and {WEIGHTS_FILE})")
    try:
        config = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{cfg_path}: corrupt JSON ({err})") from err
    required = ("name", "arch", "labels", "preprocessing", "targets", "head", "sha256")
    if not isinstance(config, dict) or any(k not in config for k in required):
        have = sorted(config) if isinstance(config, dict) else type(config).__name__
        raise CheckpointError(f"{cfg_path}: not an {FORMAT} description (needs {required}, has {have})")
    if config.get("version", VERSION) > VERSION:
        raise CheckpointError(f"{cfg_path}: format version {config['version']} is newer than this code ({VERSION})")
    return config


def load_network(path: Path) -> tuple[nn.Module, FoundationSpec]:
    """Load a network folder written by save_network (hash checked, strict key mapping)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if path.is_file() and path.name in (CONFIG_FILE, WEIGHTS_FILE):
        path = path.parent
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: network folder does not exist")
    config = read_network_config(path)
    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: missing (named by {path / CONFIG_FILE})")
    actual = sha256_file(weights)
    if actual != config["sha256"]:
        raise CheckpointError(
            f"{weights}: sha256 {actual} differs from {config['sha256']} recorded in {path / CONFIG_FILE}; "
            "the file was changed or is corrupt"
        )
    try:
        state = load_file(str(weights))
        preprocessing = Preprocessing.from_dict(config["preprocessing"])
    except (SafetensorError, OSError, TypeError, ValueError) as err:
        raise CheckpointError(f"{weights}: cannot be read ({type(err).__name__}: {err})") from err
    try:
        model = build_network(config["arch"])
    except ValueError as err:
        raise CheckpointError(f"{path / CONFIG_FILE}: bad arch ({err})") from err
    load_state_strict(model, state, weights)
    metadata = config.get("metadata") or {}
    spec = FoundationSpec(
        name=config["name"],
        description=str(metadata.get("description", f"network loaded from {path}")),
        labels={str(k): int(v) for k, v in config["labels"].items()},
        preprocessing=preprocessing,
        targets=tuple(config["targets"]),
        head=config["head"],
        arch=config["arch"],
        checkpoint_hint=str(path),
        background_channel=config.get("background_channel", 0),
        activation=config.get("activation", "softmax"),
    )
    return model.eval(), spec
