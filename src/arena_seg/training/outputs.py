"""What a fine-tuning run leaves on disk: adapter, merged network and manifest.json (one folder per run)."""

from __future__ import annotations

import json
import platform
import time
from dataclasses import replace
from pathlib import Path

import torch

from arena_seg import __version__, adapters
from arena_seg.files import write_json
from arena_seg.models.registry import FoundationSpec, save_network
from arena_seg.training.config import FinetuneConfig
from arena_seg.training.engine import FinetuneResult, merged_copy


def adapted_spec(spec: FoundationSpec, labels: dict[str, int], name: str) -> FoundationSpec:
    """The spec of a fine-tuned network: the foundation's preprocessing and targets, the new labels and head."""
    arch = json.loads(json.dumps(spec.arch))
    arch["kwargs"]["out_channels"] = len(labels) + 1
    # fine-tuning always trains a softmax head with a background channel, whatever the foundation's head was
    return replace(spec, name=name, labels=dict(labels), arch=arch, background_channel=0, activation="softmax",
                   description=f"{spec.name} fine-tuned for {', '.join(labels)}")


def save_run(
    folder: Path,
    result: FinetuneResult,
    spec: FoundationSpec,
    config: FinetuneConfig,
    data_ids: list[str],
    val_ids: list[str] | None = None,
    extra: dict | None = None,
) -> dict:
    """Write ``adapter.safetensors`` (+ ``adapter.json``) when the method has adapters, ``network/`` (merged, a
    plain network that ``arena-seg predict`` loads) and ``manifest.json``; returns the manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {
        "arena_seg": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "foundation": spec.name,
        "method": config.method,
        "config": config.to_dict(),
        "labels": result.labels,
        "data_ids": list(data_ids),
        "val_ids": list(val_ids or []),
        "adapted_layers": result.adapted_layers,
        "effective_ranks": result.ranks,
        "trainable_parameters": {"start": result.params_start, "end": result.params_end},
        "epochs_run": result.epochs_run,
        "stopped_early": result.stopped_early,
        "best_val_dice": result.best_metric,
        "seconds": round(result.seconds, 2),
        "peak_memory_mb": round(result.peak_memory_mb, 1),
        "device": result.device,
        "host": {"python": platform.python_version(), "torch": torch.__version__, "cpu": platform.processor()},
        "history": result.history,
        **(extra or {}),
    }
    merged = merged_copy(result.model)
    new_spec = adapted_spec(spec, result.labels, name=f"{spec.name}+{config.method}")
    if result.adapted_layers:
        adapters.save_adapter(result.model.cpu(), folder / "adapter.safetensors",
                              {"labels": result.labels, "foundation": spec.name, "data_ids": list(data_ids)})
    save_network(merged, folder / "network", name=new_spec.name, arch=new_spec.arch, labels=new_spec.labels,
                 preprocessing=new_spec.preprocessing, targets=new_spec.targets, head=new_spec.head,
                 metadata={"method": config.method, "data_ids": list(data_ids)})
    write_json(folder / "manifest.json", manifest, default=str)
    return manifest
