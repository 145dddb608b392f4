"""Adapter-only checkpoints: ``NAME.safetensors`` (tensors) + ``NAME.json`` (manifest), tied to one base network.

The safetensors file holds, under the injected model's ``state_dict`` keys, every adapter's ``lora_A.weight``,
``lora_B.weight`` and ``gate`` plus the full state (parameters and buffers) of the ``config.trainable`` modules.
The manifest records the base network's weight hash, the config, the wrapped layers and their ranks, the
safetensors file's own sha256 and the caller's metadata.
"""

from __future__ import annotations

import hashlib
import json
from os import PathLike
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from arena_seg.files import atomic_write, write_json

from .. import __version__
from .config import ArenaConfig
from .model import arena_layers, inject, tensor_roles

FORMAT = "arena-adapter"
FORMAT_VERSION = 1
#: every floating tensor is hashed as float32 so the hash does not depend on the dtype the model was moved to
HASH_DTYPE = torch.float32


def adapter_paths(path: str | PathLike[str]) -> tuple[Path, Path]:
    """``(weights, manifest)`` paths: ``x``, ``x.safetensors`` or ``x.json`` all give ``x.safetensors``, ``x.json``."""
    p = Path(path)
    name = p.name
    for suffix in (".safetensors", ".json"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    if not name:
        raise ValueError(f"adapter path {str(path)!r} has no file name")
    return p.with_name(f"{name}.safetensors"), p.with_name(f"{name}.json")


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _trainable_patterns(model: nn.Module) -> tuple[str, ...]:
    layers = arena_layers(model)
    return next(iter(layers.values())).config.trainable if layers else ()


def base_weights_sha256(model: nn.Module, exclude: tuple[str, ...] | None = None) -> str:
    """sha256 of the frozen base network's parameters; identical for a plain model and its injected form.

    Parameters are taken under their plain names (``base_layer`` stripped, adapter tensors skipped), minus those of
    modules matching ``exclude`` (default: the injected config's ``trainable``, or ``()`` on a plain model), sorted
    by name; name, shape and the bytes of the contiguous CPU float32 tensor are hashed. Buffers are not hashed.
    Merged wrappers change the base weights and therefore the hash.
    """
    exclude = _trainable_patterns(model) if exclude is None else tuple(exclude)
    items = {
        plain: t
        for _, plain, t, is_adapter, is_trainable in tensor_roles(model, model.named_parameters(), exclude)
        if not is_adapter and not is_trainable
    }
    h = hashlib.sha256()
    for name in sorted(items):
        t = items[name].detach()
        if t.is_floating_point():
            t = t.to(HASH_DTYPE)
        t = t.cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def _check_unmerged(model: nn.Module, action: str) -> None:
    merged = [n for n, layer in arena_layers(model).items() if layer.merged]
    if merged:
        raise ValueError(f"cannot {action} while layers {merged[:3]} are merged; call unmerge() on them first")


def save_adapter(
    model: nn.Module, path: str | PathLike[str], metadata: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Write ``NAME.safetensors`` + ``NAME.json`` (see module doc; parent dirs are created). Returns the manifest."""
    layers = arena_layers(model)
    if not layers:
        raise ValueError("model has no ARENA adapters to save; call inject() first")
    _check_unmerged(model, "save the adapter")
    metadata = dict(metadata or {})
    json.dumps(metadata)  # fail before writing anything if the caller's metadata is not JSON-serialisable
    config: ArenaConfig = next(iter(layers.values())).config
    weights_path, manifest_path = adapter_paths(path)

    tensors, trainable_keys = {}, []
    for name, _, t, is_adapter, is_trainable in tensor_roles(model, model.state_dict().items(), config.trainable):
        if is_adapter or is_trainable:
            # clone: safetensors refuses tensors that share storage
            tensors[name] = t.detach().cpu().contiguous().clone()
            if is_trainable:
                trainable_keys.append(name)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(weights_path, lambda tmp: save_file(tensors, str(tmp), metadata={"format": FORMAT}))

    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "weights_file": weights_path.name,
        "weights_sha256": _file_sha256(weights_path),
        "base_sha256": base_weights_sha256(model, config.trainable),
        "config": config.to_dict(),
        "targets": list(layers),
        "ranks": {n: layer.rank for n, layer in layers.items()},
        "trainable_keys": trainable_keys,
        "metadata": metadata,
    }
    write_json(manifest_path, manifest)
    return manifest


def read_manifest(path: str | PathLike[str]) -> dict[str, Any]:
    """Parse and sanity-check the manifest of the adapter at ``path``."""
    _, manifest_path = adapter_paths(path)
    if not manifest_path.is_file():
        raise FileNotFoundError(f"ARENA adapter manifest not found: {manifest_path}")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{manifest_path} is not an {FORMAT} v{FORMAT_VERSION} manifest")
    return manifest


def load_adapter(model: nn.Module, path: str | PathLike[str]) -> dict[str, Any]:
    """Load an adapter onto ``model`` in place and return its manifest.

    ``model`` is either the plain base network (it is injected with the saved config) or an injected one with the
    same wrapped layers (the saved config's scale/lam/prox then replace its own). Layers are resized to the saved
    ranks. Raises FileNotFoundError for a missing file and ValueError when the base weights' hash differs from the
    saved one, when the files disagree, or when the wrapped layers do not match.
    """
    weights_path, manifest_path = adapter_paths(path)
    manifest = read_manifest(path)
    if not weights_path.is_file():
        raise FileNotFoundError(f"ARENA adapter weights not found: {weights_path}")
    if _file_sha256(weights_path) != manifest["weights_sha256"]:
        raise ValueError(f"{weights_path} does not match the sha256 recorded in {manifest_path} (corrupt or replaced)")
    config = ArenaConfig.from_dict(manifest["config"])
    _check_unmerged(model, "load an adapter")

    expected, found = manifest["base_sha256"], base_weights_sha256(model, config.trainable)
    if found != expected:
        raise ValueError(
            f"base network mismatch for adapter {weights_path}: expected base weights sha256 {expected}, "
            f"found {found}; load the adapter onto the base network it was trained from"
        )
    if not arena_layers(model):
        inject(model, config)
    layers = arena_layers(model)
    if list(layers) != manifest["targets"]:
        raise ValueError(
            f"wrapped layers differ from adapter {weights_path}: model has {len(layers)}, file has "
            f"{len(manifest['targets'])}; e.g. {sorted(set(layers) ^ set(manifest['targets']))[:3]}"
        )
    for name, layer in layers.items():
        layer.config, layer.scale, layer.lam, layer.prox = config, config.scale, config.lam, config.prox
        if layer.rank != manifest["ranks"][name]:
            layer.resize(manifest["ranks"][name])

    tensors = load_file(str(weights_path))
    state_keys = set(model.state_dict())
    adapter_keys = {n for n, _, _, is_adapter, _ in tensor_roles(model, model.state_dict().items(), ()) if is_adapter}
    unexpected, missing = sorted(set(tensors) - state_keys), sorted(adapter_keys - set(tensors))
    if unexpected or missing:
        raise ValueError(
            f"adapter {weights_path} does not fit the model: unexpected keys {unexpected[:3]}, missing {missing[:3]}"
        )
    model.load_state_dict(tensors, strict=False)
    return manifest
