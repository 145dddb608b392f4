"""Dice of a network on labelled volumes, on the network's preprocessed grid (the protocol's metric)."""

from __future__ import annotations

import numpy as np
import torch
from monai.data import Dataset
from monai.inferers import sliding_window_inference
from torch import nn

from arena_seg.data.transforms import eval_transforms
from arena_seg.models.registry import Preprocessing


def dice_per_channel(pred: torch.Tensor, truth: torch.Tensor, channels: int) -> list[float]:
    """Dice of each foreground channel 1..channels-1 between two label maps of equal shape; NaN if both empty."""
    out = []
    for c in range(1, channels):
        p, t = pred == c, truth == c
        denom = int(p.sum()) + int(t.sum())
        out.append(float("nan") if denom == 0 else 2.0 * int((p & t).sum()) / denom)
    return out


@torch.no_grad()
def evaluate(
    model: nn.Module,
    pre: Preprocessing,
    files: list[dict],
    label_map: dict[int, int],
    names: list[str],
    device: torch.device | str = "cpu",
    amp: bool = False,
) -> dict[str, float]:
    """Mean Dice per organ over ``files`` ({"image", "label"} paths); ``label_map`` maps file ids to channels.

    ``names[i]`` is the organ of channel i+1. Volumes where an organ is absent from both truth and prediction
    do not count for that organ.
    """
    model.eval()
    scores: list[list[float]] = []
    for item in Dataset(files, eval_transforms(pre, label_map)):
        image = item["image"].unsqueeze(0).to(device)
        with torch.autocast(device_type=torch.device(device).type, enabled=amp):
            logits = sliding_window_inference(image, pre.patch, 2, model, overlap=0.25, mode="gaussian")
        pred = logits.argmax(1)[0].cpu()
        scores.append(dice_per_channel(pred, item["label"][0].long(), len(names) + 1))
    table = np.asarray(scores, dtype=np.float64).reshape(len(scores), len(names))
    means = [float(np.nanmean(col)) if np.isfinite(col).any() else float("nan") for col in table.T]
    return dict(zip(names, means, strict=True))
