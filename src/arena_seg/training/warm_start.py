"""Warm start: continue training a saved adapter instead of injecting fresh ones.

A run writes ``adapter.safetensors`` (+ ``adapter.json``): every adapter's A, B and gates (ranks as pruned) and the
head it trained (:func:`arena_seg.adapters.save_adapter`). :class:`WarmStart` is a training method whose ``prepare``
loads that adapter onto the foundation network (the file's sha256 and the foundation's weights hash checked) and
keeps the head rows of the organs this run learns; the optimisation afterwards is the saved method's (ARENA, or
LoRA: the saved config already has λ = 0). Used by the MONAI Label app's short updates while annotating.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from arena_seg import adapters
from arena_seg.adapters.io import load_adapter, read_manifest
from arena_seg.errors import InputError
from arena_seg.models.spec import replace_head
from arena_seg.training.methods import Arena, Method


def adapter_file(version_folder: str | Path) -> Path:
    """The adapter of a run folder; InputError when the run has none (full, linear and bitfit runs)."""
    path = Path(version_folder) / "adapter.safetensors"
    if not path.is_file() or not path.with_suffix(".json").is_file():
        raise InputError(f"{Path(version_folder).name} has no adapter to start from (its method trained no "
                         "adapters): train the organ with method arena or lora first")
    return path


def load_warm_start(model: nn.Module, head: str, adapter: str | Path, version_labels: dict[str, int],
                    organs: Sequence[str]) -> dict:
    """Load ``adapter`` (trained for ``version_labels``: {organ: output channel}) onto the plain foundation network
    ``model`` in place, then give it a head for ``organs`` (background first) made of the saved head's rows.

    Returns the adapter's manifest. Raises InputError for an organ the adapter did not learn, ValueError (from
    :func:`~arena_seg.adapters.load_adapter`) for a file or foundation that does not match.
    """
    missing = [o for o in organs if o not in version_labels]
    if missing:
        raise InputError(f"the adapter to start from did not learn {', '.join(missing)} (it learned "
                         f"{', '.join(version_labels)})")
    # the saved head has one row per learned organ plus background: give the model that shape to load it into
    replace_head(model, head, [None] * (max(version_labels.values(), default=0) + 1))
    manifest = load_adapter(model, adapter)
    replace_head(model, head, [0, *(version_labels[o] for o in organs)])  # the run's organs, in the run's order
    return manifest


class WarmStart(Method):
    """A training method that starts from a saved adapter (see the module doc)."""

    def __init__(self, adapter: str | Path, version_labels: dict[str, int], organs: Sequence[str]) -> None:
        self.adapter = Path(adapter)
        self.version_labels = dict(version_labels)
        self.organs = list(organs)
        saved = read_manifest(self.adapter)
        self.inner = Arena(adapters.ArenaConfig.from_dict(saved["config"]))
        self.name = "warm-start"

    def prepare(self, model: nn.Module, head: str, targets: Sequence[str]) -> list[str]:
        """Load the adapter (``targets`` are the saved ones, whatever the run's config says)."""
        manifest = load_warm_start(model, head, self.adapter, self.version_labels, self.organs)
        return list(manifest["targets"])

    def param_groups(self, model: nn.Module, lr: float, weight_decay: float) -> list[dict]:
        return self.inner.param_groups(model, lr, weight_decay)

    def optimizers(self, model: nn.Module, lr: float, weight_decay: float) -> list[torch.optim.Optimizer]:
        return self.inner.optimizers(model, lr, weight_decay)

    def after_step(self, model: nn.Module, optimizers: list[torch.optim.Optimizer], step: int, total: int) -> None:
        self.inner.after_step(model, optimizers, step, total)

    def ranks(self, model: nn.Module) -> dict[str, int]:
        return self.inner.ranks(model)

    def finish(self, model: nn.Module) -> dict[str, int]:
        return self.inner.finish(model)
