"""Resolve what a user names as a model (a registry name, a fine-tuned run, a network folder) to a network."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from arena_seg.errors import InputError
from arena_seg.models.registry import FoundationSpec, list_foundations, load_foundation, load_network


def network_dir(ref: str | Path) -> Path | None:
    """The folder holding ``network.json`` for a run folder, a version folder or a network folder."""
    path = Path(ref)
    for candidate in (path, path / "network", path / "latest" / "network"):
        if (candidate / "network.json").is_file():
            return candidate
    return None


def load_model(ref: str, checkpoint: str | None = None) -> tuple[nn.Module, FoundationSpec]:
    """``ref`` is a foundation name (``default``, ``fseft-swinunetr``...) or a folder written by arena-seg."""
    if ref in list_foundations():
        return load_foundation(ref, checkpoint)
    folder = network_dir(ref)
    if folder is not None:
        return load_network(folder)
    if Path(ref).exists():
        raise InputError(f"model {ref} holds no network.json; give a folder written by `arena-seg finetune` or "
                         f"`arena-seg pretrain`, or one of: {', '.join(list_foundations())}")
    raise InputError(f"unknown model {ref!r}; give one of {', '.join(list_foundations())} or a model folder")
