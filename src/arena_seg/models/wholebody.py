"""MONAI Model Zoo `wholeBody_ct_segmentation` bundle (SegResNet, TotalSegmentator 104 classes + background).

Facts from Project-MONAI/model-zoo models/wholeBody_ct_segmentation: configs/inference.json (network_def,
preprocessing, SlidingWindowInferer roi 96^3, `highres` default true -> 1.5 mm and models/model.pt; the 3 mm
variant is models/model_lowres.pt), configs/metadata.json (channel_def), configs/train.json (CheckpointSaver with
save_dict {"model": network}: model.pt is the bare state_dict; a {"model": ...} wrapper is accepted too).
"""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from .checkpoint import extract_state_dict, load_state_strict, read_torch_file, remap_keys
from .labels import WHOLEBODY_LABELS
from .spec import FoundationSpec, Preprocessing, build_network

BUNDLE_NAME = "wholeBody_ct_segmentation"
BUNDLE_WEIGHTS = Path("models") / "model.pt"

WHOLEBODY_SPEC = FoundationSpec(
    name="monai-wholebody",
    description=(
        "MONAI Model Zoo wholeBody_ct_segmentation (highres 1.5 mm): SegResNet trained on TotalSegmentator, "
        "105 softmax channels (0 = background, 104 structures)"
    ),
    labels=dict(WHOLEBODY_LABELS),
    preprocessing=Preprocessing(spacing=(1.5, 1.5, 1.5), patch=(96, 96, 96), intensity="nonzero_zscore_minmax"),
    # the 3x3x3 convs of every residual block, encoder (down_layers) and decoder (up_layers); not the strided
    # down-sampling convs, the 1x1x1 up-sampling convs, convInit or the head
    targets=(r"(down|up)_layers\.\d+\.\d+\.conv[12]\.conv$",),
    head="conv_final.2.conv",
    arch={
        "class": "SegResNet",
        "kwargs": {
            "spatial_dims": 3,
            "in_channels": 1,
            "out_channels": 105,
            "init_filters": 32,
            "blocks_down": [1, 2, 2, 4],
            "blocks_up": [1, 1, 1],
            "dropout_prob": 0.2,
        },
    },
    checkpoint_hint=(
        f"MONAI bundle {BUNDLE_NAME} (python -m monai.bundle download {BUNDLE_NAME} --bundle_dir DIR); pass the "
        "bundle folder or its models/model.pt as --checkpoint PATH / --conf checkpoint PATH, or nothing to "
        "download it into the arena-seg cache"
    ),
)


def bundle_cache_dir() -> Path:
    """Where bundles are downloaded: $ARENA_SEG_BUNDLE_DIR, else ~/.cache/arena-seg/bundles."""
    env = os.environ.get("ARENA_SEG_BUNDLE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "arena-seg" / "bundles"


def _download_bundle(bundle_dir: Path) -> None:
    import monai.bundle

    try:
        bundle_dir.mkdir(parents=True, exist_ok=True)
        monai.bundle.download(name=BUNDLE_NAME, bundle_dir=str(bundle_dir))
    except Exception as err:  # network, hosting or disk failure: all end the same way for the user
        raise RuntimeError(
            f"could not download the MONAI bundle {BUNDLE_NAME} into {bundle_dir} ({type(err).__name__}: {err}). "
            f"Download it on a machine with internet access (python -m monai.bundle download {BUNDLE_NAME} "
            "--bundle_dir DIR) and pass the bundle folder (or its models/model.pt) with --checkpoint PATH / "
            "--conf checkpoint PATH"
        ) from err


def resolve_wholebody_checkpoint(checkpoint: str | Path | None) -> Path:
    """The model.pt to load: given file, <folder>/models/model.pt, or the cached (downloaded if need be) bundle."""
    if checkpoint is None:
        cache = bundle_cache_dir()
        weights = cache / BUNDLE_NAME / BUNDLE_WEIGHTS
        if not weights.is_file():
            _download_bundle(cache)
        if not weights.is_file():
            raise RuntimeError(f"bundle {BUNDLE_NAME} was downloaded into {cache} but {weights} is missing")
        return weights
    path = Path(checkpoint).expanduser()
    if path.is_dir():
        for candidate in (path / BUNDLE_WEIGHTS, path / BUNDLE_NAME / BUNDLE_WEIGHTS, path / "model.pt"):
            if candidate.is_file():
                return candidate
        raise FileNotFoundError(f"{path}: no {BUNDLE_WEIGHTS} in this folder (expected a {BUNDLE_NAME} bundle)")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {BUNDLE_NAME} checkpoint not found (a bundle folder or its model.pt)")
    return path


def _bundle_key(key: str) -> str:
    return key[len("module.") :] if key.startswith("module.") else key


def load_wholebody(checkpoint: str | Path | None) -> nn.Module:
    path = resolve_wholebody_checkpoint(checkpoint)
    state = remap_keys(extract_state_dict(read_torch_file(path), path), _bundle_key, path)
    return load_state_strict(build_network(WHOLEBODY_SPEC.arch), state, path)
