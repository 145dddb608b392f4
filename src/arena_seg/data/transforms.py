"""MONAI transform pipelines for the paper's CT protocol (orientation, spacing, HU window, crop, patches).

Resampling is MONAI's Orientation + Spacing: its grid and its arithmetic. Training and evaluation files are loaded
straight onto that grid chunk by chunk (:class:`LoadOnGridd`, ``loader="chunked"``), so a clinical-size scan is
never held as full-resolution float32 and float64 copies; ``loader="monai"`` is the former MONAI pipeline
(LoadImaged → Orientationd → Spacingd), which gives the same tensors to float rounding.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai import transforms as mt
from monai.data import MetaTensor

from arena_seg.models.registry import Preprocessing

LOADERS = ("chunked", "monai")
#: training augmentation: "light" (an intensity shift: few-shot runs) or "strong" (a foundation network's
#: pretraining: patch rotation/scale, contrast, blur and noise on top)
AUGMENTS = ("light", "strong")


def _common(pre: Preprocessing, keys: Sequence[str], with_label: bool, loader: str = "monai") -> list:
    modes = ("bilinear", "nearest") if with_label else ("bilinear",)
    if loader not in LOADERS:
        raise ValueError(f"loader must be one of {LOADERS}, got {loader!r}")
    if loader == "chunked":
        return [LoadOnGridd(keys=list(keys), pre=pre, modes=modes), *_intensity(pre)]
    return [
        mt.LoadImaged(keys=list(keys), image_only=False),
        mt.EnsureChannelFirstd(keys=list(keys)),
        mt.Orientationd(keys=list(keys), axcodes=pre.orientation),
        mt.Spacingd(keys=list(keys), pixdim=pre.spacing, mode=modes),
        *_intensity(pre),
    ]


def _intensity(pre: Preprocessing) -> list:
    if pre.intensity == "nonzero_zscore_minmax":  # what MONAI's wholeBody_ct_segmentation bundle was trained with
        return [mt.NormalizeIntensityd(keys="image", nonzero=True), mt.ScaleIntensityd(keys="image", minv=-1.0,
                                                                                        maxv=1.0)]
    return [mt.ScaleIntensityRanged(keys="image", a_min=pre.hu_window[0], a_max=pre.hu_window[1], b_min=0.0,
                                    b_max=1.0, clip=True)]


def train_transforms(
    pre: Preprocessing, label_map: dict[int, int], num_samples: int = 6, sampler: str = "posneg",
    loader: str = "chunked", augment: str = "light",
) -> mt.Compose:
    """Training pipeline; MONAI's CacheDataset caches everything before the first random transform.

    ``label_map`` maps the ids found in label files to output channels; ids not in it become background, so a
    label file with several organs trains only the requested ones. ``loader``: see the module's docstring.
    """
    orig = sorted(label_map)
    deterministic = [
        *_common(pre, ("image", "label"), with_label=True, loader=loader),
        _ZeroUnmapped(keys="label", keep=set(orig)),
        mt.MapLabelValued(keys="label", orig_labels=orig, target_labels=[label_map[i] for i in orig]),
        mt.CropForegroundd(keys=["image", "label"], source_key="image", allow_smaller=True, margin=4),
        mt.SpatialPadd(keys=["image", "label"], spatial_size=pre.patch),
        mt.EnsureTyped(keys=["image", "label"], track_meta=False),
    ]
    if sampler == "classes":
        # ratios=None: every class (background included) centres an equal share of patches
        crop = mt.RandCropByLabelClassesd(
            keys=["image", "label"], label_key="label", spatial_size=pre.patch, num_classes=len(label_map) + 1,
            num_samples=num_samples, image_key="image", image_threshold=0, warn=False,
        )
    else:
        crop = mt.RandCropByPosNegLabeld(
            keys=["image", "label"], label_key="label", spatial_size=pre.patch, pos=1, neg=1,
            num_samples=num_samples, image_key="image", image_threshold=0,
        )
    if augment not in AUGMENTS:
        raise ValueError(f"augment must be one of {AUGMENTS}, got {augment!r}")
    random = [crop, *(_strong() if augment == "strong" else []), mt.RandShiftIntensityd(keys="image", offsets=0.1,
                                                                                      prob=0.5)]
    return mt.Compose(deterministic + random)


def _strong() -> list:
    """Patch-level augmentation for pretraining on few real scans: no flips (left and right organs differ)."""
    keys = ["image", "label"]
    return [
        mt.RandAffined(keys=keys, prob=0.3, rotate_range=(0.2, 0.2, 0.2), scale_range=(0.15, 0.15, 0.15),
                       mode=("bilinear", "nearest"), padding_mode="zeros"),
        mt.RandAdjustContrastd(keys="image", prob=0.3, gamma=(0.75, 1.35)),
        mt.RandScaleIntensityd(keys="image", factors=0.1, prob=0.3),
        mt.RandGaussianSmoothd(keys="image", prob=0.2, sigma_x=(0.3, 0.9), sigma_y=(0.3, 0.9), sigma_z=(0.3, 1.2)),
        mt.RandGaussianNoised(keys="image", prob=0.3, std=0.03),
    ]


def eval_transforms(pre: Preprocessing, label_map: dict[int, int] | None = None, loader: str = "chunked"
                    ) -> mt.Compose:
    """Preprocess a whole volume (and optionally its label, mapped to channels) for sliding-window evaluation."""
    keys = ("image", "label") if label_map is not None else ("image",)
    steps = _common(pre, keys, with_label=label_map is not None, loader=loader)
    if label_map is not None:
        orig = sorted(label_map)
        steps += [
            _ZeroUnmapped(keys="label", keep=set(orig)),
            mt.MapLabelValued(keys="label", orig_labels=orig, target_labels=[label_map[i] for i in orig]),
        ]
    return mt.Compose(steps)


def infer_transforms(pre: Preprocessing) -> mt.Compose:
    """Preprocessing of an in-memory volume ({"image": MetaTensor (1, X, Y, Z) with its affine}) for prediction;
    invertible with ``monai.transforms.Invertd`` back to the input grid."""
    return mt.Compose(_common(pre, ("image",), with_label=False)[2:])


def intensity_transforms(pre: Preprocessing) -> mt.Compose:
    """The intensity steps alone ({"image": (1, X, Y, Z) on the network grid}), for a volume already resampled
    there (the predictor resamples in chunks: :func:`arena_seg.inference.resample.resample_image`)."""
    return mt.Compose(_intensity(pre))


class _ZeroUnmapped(mt.MapTransform):
    """Set label values that are not requested to background (0) before they are mapped to channels.

    Zeroing first matters: an unrequested organ whose id equals a target channel would otherwise be trained.
    """

    def __init__(self, keys: str, keep: set[int]) -> None:
        super().__init__(keys)
        self.keep = sorted(keep | {0})

    def __call__(self, data: dict) -> dict:
        import torch

        d = dict(data)
        for key in self.key_iterator(d):
            lab = d[key]
            keep = torch.as_tensor(self.keep, dtype=lab.dtype, device=lab.device)
            d[key] = lab * torch.isin(lab, keep)
        return d


class LoadOnGridd(mt.MapTransform):
    """Read each key's file (a path) and resample it onto the network grid: {key: MetaTensor (1, X', Y', Z')
    float32 with the grid's RAS affine}, as LoadImaged → EnsureChannelFirstd → Orientationd → Spacingd give it.

    The grid is MONAI's (Orientation + Spacing evaluated lazily, :func:`~arena_seg.inference.resample.network_grid`)
    and so is the arithmetic (float64 trilinear or nearest, border padding), but the voxels are resampled chunk by
    chunk of the output (:func:`~arena_seg.inference.resample.resample_image`): a 512² × 400 int16 scan costs its
    own 210 MB while it loads, not float32 and float64 copies of it (1.3 GB more).
    """

    def __init__(self, keys: Sequence[str], pre: Preprocessing, modes: Sequence[str]) -> None:
        super().__init__(keys)
        self.pre = pre
        self.modes = tuple(modes)

    def __call__(self, data: dict) -> dict:
        from arena_seg.data.volumes import read_volume
        from arena_seg.inference.resample import network_grid, resample_image

        d = dict(data)
        for key, mode in self.key_iterator(d, self.modes):
            volume = read_volume(d[key], what=key)
            shape, affine = network_grid(volume.shape, volume.affine, self.pre)
            voxels = resample_image(volume.array, volume.affine, shape, affine, mode=mode)
            del volume  # the scan (or its memory map) goes before the next key is read
            d[key] = MetaTensor(voxels[None], affine=torch.as_tensor(np.asarray(affine), dtype=torch.float64))
        return d
