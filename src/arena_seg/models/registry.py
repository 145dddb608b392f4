"""Registry of the foundation networks arena-seg can fine-tune: name -> spec + weight loader."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from torch import nn

from arena_seg.resources import sample_model_dir

from .checkpoint import CONFIG_FILE, WEIGHTS_FILE, CheckpointError, CheckpointWarning, load_network, save_network
from .labels import DEFAULT_LABELS
from .spec import FoundationSpec, Preprocessing, build_network, replace_head
from .swinunetr import FSEFT_SPEC, SWIN_DECODER_TARGETS, SWIN_HEAD, load_fseft, swinunetr_arch
from .wholebody import WHOLEBODY_SPEC, load_wholebody

__all__ = [  # the whole public API is importable from here as well as from arena_seg.models
    "CheckpointError",
    "CheckpointWarning",
    "FoundationSpec",
    "Preprocessing",
    "build_network",
    "default_model_dir",
    "get_spec",
    "list_foundations",
    "load_foundation",
    "load_network",
    "replace_head",
    "save_network",
]

DEFAULT_MODEL_ENV = "ARENA_SEG_DEFAULT_MODEL"


def default_model_dir() -> Path:
    """Folder of the embedded default model: $ARENA_SEG_DEFAULT_MODEL, else the one installed with arena-seg."""
    env = os.environ.get(DEFAULT_MODEL_ENV)
    if env:
        return Path(env).expanduser()
    return sample_model_dir()


DEFAULT_SPEC = FoundationSpec(
    name="default",
    description="small SwinUNETR (feature size 12) embedded with arena-seg: background + 6 abdominal organs",
    labels=dict(DEFAULT_LABELS),
    preprocessing=Preprocessing(spacing=(3.0, 3.0, 3.0), patch=(64, 64, 64)),
    targets=SWIN_DECODER_TARGETS,
    head=SWIN_HEAD,
    # one Swin block per stage and 4³ windows: about 4× cheaper than the stock 7³ on a CPU (a 64³ training step
    # with 4 patches took 4.6 s instead of 16 s on 2 cores), and every stage keeps its qkv layer for ARENA
    arch=swinunetr_arch(out_channels=1 + len(DEFAULT_LABELS), feature_size=12, depths=(1, 1, 1, 1), window_size=4),
    checkpoint_hint=f"arena-seg's own network folder, ${DEFAULT_MODEL_ENV} or <repo>/sample-data/default",
)


def _load_default(checkpoint: str | Path | None) -> tuple[nn.Module, FoundationSpec]:
    folder = Path(checkpoint).expanduser() if checkpoint is not None else default_model_dir()
    if checkpoint is None and not (folder / CONFIG_FILE).is_file():
        raise FileNotFoundError(
            f"the embedded default model is missing: no {CONFIG_FILE} / {WEIGHTS_FILE} in {folder}. Create it with "
            f"`arena-seg pretrain ...` writing to that folder, or point ${DEFAULT_MODEL_ENV} at a network folder"
        )
    return load_network(folder)


def _with_spec(spec: FoundationSpec, load: Callable[[str | Path | None], nn.Module]):
    def loader(checkpoint: str | Path | None) -> tuple[nn.Module, FoundationSpec]:
        return load(checkpoint).eval(), spec

    return loader


_REGISTRY: dict[str, tuple[FoundationSpec, Callable[[str | Path | None], tuple[nn.Module, FoundationSpec]]]] = {
    DEFAULT_SPEC.name: (DEFAULT_SPEC, _load_default),
    FSEFT_SPEC.name: (FSEFT_SPEC, _with_spec(FSEFT_SPEC, load_fseft)),
    WHOLEBODY_SPEC.name: (WHOLEBODY_SPEC, _with_spec(WHOLEBODY_SPEC, load_wholebody)),
}


def list_foundations() -> list[str]:
    return list(_REGISTRY)


def get_spec(name: str) -> FoundationSpec:
    try:
        return _REGISTRY[name][0]
    except KeyError:
        raise ValueError(f"unknown foundation model {name!r}; known: {', '.join(_REGISTRY)}") from None


def load_foundation(name: str, checkpoint: str | Path | None = None) -> tuple[nn.Module, FoundationSpec]:
    """Build foundation `name` and load its weights (from `checkpoint` where given). The model is in eval mode.

    `default`: a network folder in our format (None: default_model_dir()); the returned spec is the folder's.
    `fseft-swinunetr`: path to fseft.pth (required). `monai-wholebody`: bundle folder or its models/model.pt
    (None: the cached bundle, downloaded on first use).
    """
    get_spec(name)  # unknown-name error
    return _REGISTRY[name][1](checkpoint)
