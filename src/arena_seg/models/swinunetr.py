"""SwinUNETR foundation networks: arch helper and the FSEFT checkpoint.

FSEFT (Silva-Rodriguez et al., github.com/jusiro/fewshot-finetuning) pre-trains a Swin-UNETR (feature size 48)
with a 29-channel sigmoid head on 9 partially labelled CT datasets. Its `fseft.pth` is a `torch.save` of the
(DistributedDataParallel) state_dict of their own copy of the MONAI 0.9 SwinUNETR (main_pretrain.py), so keys look
like `module.swinViT.layers1.0.blocks.0.attn.qkv.weight`, `module.encoder1.layer.conv1.conv.weight`,
`module.classifier.weight`. Their loader (utils/models.py load_weights) also accepts `state_dict`/`net`
containers and `module.`, `backbone.` and `swin_vit` spellings; fseft_key() applies the same rules, then maps
`classifier.*` to MONAI's `out.conv.conv.*`.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from .checkpoint import extract_state_dict, load_state_strict, read_torch_file, remap_keys
from .labels import FSEFT_LABELS
from .merging import LEGACY_MERGING, LegacyPatchMerging
from .spec import FoundationSpec, Preprocessing, build_network

__all__ = ["FSEFT_SPEC", "LEGACY_MERGING", "LegacyPatchMerging", "fseft_key", "load_fseft", "swinunetr_arch"]


def swinunetr_arch(
    out_channels: int,
    feature_size: int,
    downsample: str = "merging",
    depths: tuple[int, ...] = (2, 2, 2, 2),
    window_size: int = 7,
) -> dict:
    """JSON-able arch of a 3D single-channel MONAI SwinUNETR (MONAI >= 1.5: no img_size)."""
    return {
        "class": "SwinUNETR",
        "kwargs": {
            "spatial_dims": 3,
            "in_channels": 1,
            "out_channels": out_channels,
            "feature_size": feature_size,
            "depths": list(depths),
            "window_size": window_size,
            "num_heads": [3, 6, 12, 24],
            "norm_name": "instance",
            "drop_rate": 0.0,
            "attn_drop_rate": 0.0,
            "dropout_path_rate": 0.0,
            "normalize": True,
            "use_checkpoint": False,
            "downsample": downsample,
            "use_v2": False,
        },
    }


SWIN_TARGETS = (r"qkv$",)  # the fused q/k/v projection of every Swin attention block (the paper's choice)
#: the Swin qkv projections and the two 3³ convolutions of every decoder block. The small default network needs its
#: decoder adapted to learn an organ it never saw: 5 pancreas shots through qkv alone reached Dice 0.093 (20 epochs);
#: 2 pancreas shots through these layers 0.567 (80 epochs, 269 s), while adapting every weight layer (46) was 1.6×
#: slower a step and reached 0.366 (60 epochs). ARENA then prunes each of them to the rank the task needs.
SWIN_DECODER_TARGETS = (r"qkv$", r"decoder\d\.conv_block\.conv[12]\.conv$")
SWIN_HEAD = "out.conv.conv"

FSEFT_SPEC = FoundationSpec(
    name="fseft-swinunetr",
    description=(
        "FSEFT foundation model (Silva-Rodriguez, Dolz, Ben Ayed; MedIA 2025): Swin-UNETR fs48 pre-trained on 2,022 "
        "CT scans from 9 datasets, 29 classes, one sigmoid per class (no background channel)"
    ),
    labels=dict(FSEFT_LABELS),
    preprocessing=Preprocessing(spacing=(1.5, 1.5, 1.5), hu_window=(-175.0, 250.0), patch=(96, 96, 96)),
    targets=SWIN_TARGETS,
    head=SWIN_HEAD,
    arch=swinunetr_arch(out_channels=len(FSEFT_LABELS), feature_size=48, downsample=LEGACY_MERGING),
    checkpoint_hint=(
        "local fseft.pth from the 'FSEFT' row of https://github.com/jusiro/fewshot-finetuning (README, "
        "2.2 Pre-trained models); pass --checkpoint PATH (CLI) or --conf checkpoint PATH (MONAI Label)"
    ),
    background_channel=None,
    activation="sigmoid",
)


def fseft_key(key: str) -> str:
    """Map one FSEFT / MONAI-research SwinUNETR checkpoint key to MONAI SwinUNETR's name."""
    stripped = True
    while stripped:  # DDP wrapper and CLIP-Driven style `backbone.` prefix, in any order
        stripped = False
        for prefix in ("module.", "backbone."):
            if key.startswith(prefix):
                key, stripped = key[len(prefix) :], True
    if key.startswith("swin_vit."):
        key = "swinViT." + key[len("swin_vit.") :]
    if key.startswith("classifier."):
        key = SWIN_HEAD + "." + key[len("classifier.") :]
    return key.replace(".mlp.fc1.", ".mlp.linear1.").replace(".mlp.fc2.", ".mlp.linear2.")


def load_fseft(checkpoint: str | Path | None) -> nn.Module:
    """The FSEFT network with the weights of ``fseft.pth`` (a file, or a folder holding one).

    Keys are mapped by :func:`fseft_key`; a missing or mis-shaped network key is a :class:`CheckpointError`, a key
    the network does not have is left out with a :class:`CheckpointWarning` naming it.
    """
    if checkpoint is None:
        raise ValueError(
            "fseft-swinunetr has no default weights: download fseft.pth and pass --conf checkpoint PATH "
            "(MONAI Label) or --checkpoint PATH (CLI) pointing to it. Source: " + FSEFT_SPEC.checkpoint_hint
        )
    path = Path(checkpoint).expanduser()
    if path.is_dir() and (path / "fseft.pth").is_file():
        path = path / "fseft.pth"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: FSEFT checkpoint not found (expected the fseft.pth file)")
    state = remap_keys(extract_state_dict(read_torch_file(path), path), fseft_key, path)
    model = build_network(FSEFT_SPEC.arch)
    # relative_position_index buffers are recomputed identically at build time; some exports omit them. Keys the
    # network does not have are left out with a warning, as FSEFT's own loader (load_state_dict strict=False) does
    return load_state_strict(model, state, path, optional=r"relative_position_index$", extra="warn")
