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


LIBRARY_PREFIX = "library:"


def load_predictor(ref: str, checkpoint: str | None = None, device: str = "auto"):
    """A Predictor for ``ref``: a model as :func:`load_model` takes it, or ``library:DIR``, an organ library (the
    foundation's organs plus every learned organ, :mod:`arena_seg.library`)."""
    from arena_seg.inference.predictor import Predictor

    if not str(ref).startswith(LIBRARY_PREFIX):
        model, spec = load_model(ref, checkpoint)
        return Predictor(model, spec, device=device)
    from arena_seg.library import LibraryPredictor, OrganLibrary, library_foundation

    library = OrganLibrary(str(ref)[len(LIBRARY_PREFIX):])
    foundation_ref = library_foundation(library)
    model, spec = load_model(foundation_ref, checkpoint)
    return LibraryPredictor(Predictor(model, spec, device=device), library)
