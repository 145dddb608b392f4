"""What a foundation network is (dataclasses), how to build one from its JSON-able `arch`, and head surgery."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from .merging import LEGACY_MERGING, LegacyPatchMerging

# Intensity normalisations a Preprocessing may ask for:
#   "hu_window": clip HU to hu_window and scale linearly to 0..1 (ScaleIntensityRanged(a_min, a_max, 0, 1, clip=True))
#   "nonzero_zscore_minmax": NormalizeIntensityd(nonzero=True) then ScaleIntensityd(minv=-1, maxv=1) (MONAI
#       wholeBody_ct_segmentation bundle); hu_window is then unused.
INTENSITY_MODES = ("hu_window", "nonzero_zscore_minmax")


@dataclass(frozen=True)
class Preprocessing:
    spacing: tuple[float, float, float]  # mm, target spacing after Spacingd
    hu_window: tuple[float, float] = (-175.0, 250.0)  # clipped and scaled to 0..1
    patch: tuple[int, int, int] = (96, 96, 96)  # training patch == sliding-window ROI
    orientation: str = "RAS"
    intensity: str = "hu_window"  # one of INTENSITY_MODES

    def __post_init__(self) -> None:
        object.__setattr__(self, "spacing", tuple(float(s) for s in self.spacing))
        object.__setattr__(self, "hu_window", tuple(float(h) for h in self.hu_window))
        object.__setattr__(self, "patch", tuple(int(p) for p in self.patch))
        if len(self.spacing) != 3 or len(self.patch) != 3 or len(self.hu_window) != 2:
            raise ValueError(f"Preprocessing needs 3 spacings, 3 patch sizes and 2 HU bounds, got {self}")
        if self.hu_window[0] >= self.hu_window[1]:
            raise ValueError(f"hu_window must be (low, high) with low < high, got {self.hu_window}")
        if self.intensity not in INTENSITY_MODES:
            raise ValueError(f"intensity must be one of {INTENSITY_MODES}, got {self.intensity!r}")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        return cls(**data)


@dataclass(frozen=True)
class FoundationSpec:
    name: str
    description: str
    labels: dict[str, int]  # organ name -> output channel (the background channel is not listed)
    preprocessing: Preprocessing
    targets: tuple[str, ...]  # default ARENA target regexes (module qualified names)
    head: str  # qualified name of the final nn.Conv3d producing the logits
    arch: dict  # {"class": "SwinUNETR"|"SegResNet", "kwargs": {...}}: JSON-able, rebuilds the net
    checkpoint_hint: str  # where the weights come from (for error messages / docs)
    # Output channel of the background class; None when the head has none (FSEFT: one sigmoid per organ).
    # Use it as rows[0] of replace_head: None there means a freshly initialised background row.
    background_channel: int | None = 0
    activation: str = "softmax"  # how the head's logits were trained: "softmax" over channels or per-channel "sigmoid"

    @property
    def out_channels(self) -> int:
        return int(self.arch["kwargs"]["out_channels"])


def build_network(arch: dict) -> nn.Module:
    """Build `monai.networks.nets.<arch["class"]>(**arch["kwargs"])` (random weights)."""
    import monai.networks.nets as nets

    if not isinstance(arch, dict) or not isinstance(arch.get("class"), str):
        raise ValueError(f"arch must be a dict with a 'class' name and 'kwargs', got {arch!r}")
    name = arch["class"]
    cls = getattr(nets, name, None)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ValueError(f"unknown network class {name!r}: arch['class'] must name a class of monai.networks.nets")
    kwargs = dict(arch.get("kwargs") or {})
    if name == "SwinUNETR" and kwargs.get("downsample") == LEGACY_MERGING:
        kwargs["downsample"] = LegacyPatchMerging
    try:
        return cls(**kwargs)
    except TypeError as err:  # wrong / removed keyword (e.g. img_size in MONAI >= 1.5)
        raise ValueError(f"cannot build {name} from kwargs {kwargs}: {err}") from err


def _parent_and_attr(model: nn.Module, qualname: str) -> tuple[nn.Module, str]:
    parent_name, _, attr = qualname.rpartition(".")
    try:
        parent = model.get_submodule(parent_name) if parent_name else model
        getattr(parent, attr)
    except AttributeError as err:
        raise ValueError(f"the network has no module named {qualname!r}") from err
    return parent, attr


def replace_head(model: nn.Module, head: str, rows: list[int | None]) -> nn.Module:
    """Replace the head conv `head` by a Conv3d with len(rows) outputs, in place.

    Output channel i copies weight/bias row rows[i] of the old head when it is not None (a base organ keeps its
    pretrained logit exactly; rows[0] is normally the old background channel), else it starts fresh (N(0, 0.01)
    weights, zero bias). Returns `model`.
    """
    parent, attr = _parent_and_attr(model, head)
    old = getattr(parent, attr)
    if not isinstance(old, nn.Conv3d):
        raise ValueError(f"head {head!r} is a {type(old).__name__}, expected nn.Conv3d")
    if not rows:
        raise ValueError("rows must list at least one output channel")
    for r in rows:
        if r is not None and not 0 <= r < old.out_channels:
            raise ValueError(f"row {r} is out of range: head {head!r} has {old.out_channels} output channels")
    new = nn.Conv3d(
        old.in_channels,
        len(rows),
        kernel_size=old.kernel_size,
        stride=old.stride,
        padding=old.padding,
        dilation=old.dilation,
        bias=old.bias is not None,
    ).to(device=old.weight.device, dtype=old.weight.dtype)
    with torch.no_grad():
        nn.init.normal_(new.weight, mean=0.0, std=0.01)
        if new.bias is not None:
            new.bias.zero_()
        for i, r in enumerate(rows):
            if r is None:
                continue
            new.weight[i].copy_(old.weight[r])
            if new.bias is not None:
                new.bias[i].copy_(old.bias[r])
    setattr(parent, attr, new)
    return model
