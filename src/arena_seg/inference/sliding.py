"""Gaussian-blended sliding-window inference that hands out class probabilities slab by slab.

The windows, Gaussian weights, padding and blending are MONAI's ``sliding_window_inference`` (overlap, mode
"gaussian", sigma 0.125, constant padding of a volume smaller than the window). MONAI keeps the blended logits of
the whole volume (K channels × the network grid: 4.6 GB for 105 classes on a 512² × 400 scan at 1.5 mm) and
then a softmax copy of them; here windows run in order of their start along axis 0, and a slab is turned into
probabilities and handed to ``consume`` as soon as no later window reaches it. Only one window depth of scores
(K × (roi + 1) × Y × Z) is ever held.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import groupby

import torch
import torch.nn.functional as F
from torch import nn


def scan_starts(image_size: Sequence[int], roi: Sequence[int], overlap: float) -> list[tuple[int, ...]]:
    """Window start corners, as MONAI's sliding_window_inference places them (``dense_patch_slices`` with its
    scan interval: ``int(roi · (1 − overlap))``, or the whole axis where the window spans it)."""
    from monai.data.utils import dense_patch_slices

    interval = [r if r == s else max(int(r * (1 - overlap)), 1) for s, r in zip(image_size, roi, strict=True)]
    slices = dense_patch_slices(list(image_size), list(roi), interval)
    return [tuple(int(s.start) for s in sl) for sl in slices]


def _move(buf: torch.Tensor, src: int, dst: int, n: int) -> None:
    """buf[:, dst:dst+n] = buf[:, src:src+n] for dst < src, slice by slice (overlapping copies are not allowed)."""
    for i in range(n):
        buf[:, dst + i].copy_(buf[:, src + i])


@torch.no_grad()
def stream_probabilities(
    model: nn.Module,
    image: torch.Tensor,
    roi: Sequence[int],
    channels: int,
    consume: Callable[[torch.Tensor, int], None],
    *,
    overlap: float = 0.25,
    sw_batch_size: int = 1,
    activation: str = "softmax",
    amp: bool = False,
) -> None:
    """Run ``model`` over ``image`` (1, 1, X, Y, Z; on the model's device) in Gaussian-blended windows of ``roi``.

    ``consume(probs, start)`` receives probabilities (K, n, Y, Z) of slices [start, start + n) along axis 0, in
    order, each slab starting with the last slice of the one before (so that interpolation between slabs has
    both sides). K = ``channels``: the network's outputs for ``activation="softmax"``; for ``"sigmoid"`` one more,
    channel 0 a constant 0.5 background (an organ wins only above 0.5) before the network's outputs. The tensor
    is a view of a buffer reused for the next slab: copy what you keep.
    """
    if activation not in ("softmax", "sigmoid"):
        raise ValueError(f"activation must be softmax or sigmoid, got {activation!r}")
    from monai.data.utils import compute_importance_map

    shift = 1 if activation == "sigmoid" else 0
    roi = tuple(int(r) for r in roi)
    real = tuple(int(s) for s in image.shape[2:])
    pads = [(max(r - s, 0) // 2, max(r - s, 0) - max(r - s, 0) // 2) for s, r in zip(real, roi, strict=True)]
    if any(sum(p) for p in pads):  # as MONAI: constant 0 padding, half before, the rest after
        image = F.pad(image, [v for p in reversed(pads) for v in p])
    size = tuple(int(s) for s in image.shape[2:])
    device = image.device
    weight = compute_importance_map(roi, mode="gaussian", sigma_scale=0.125, device=device, dtype=image.dtype)
    weight = weight.to(torch.float32)[None]  # (1, rx, ry, rz)
    depth = roi[0]
    # slot 0 holds the last finished slice of the previous slab (interpolation needs it); 1.. the open window depth
    scores = torch.zeros((channels, depth + 1, size[1], size[2]), dtype=torch.float32, device=device)
    count = torch.zeros((1, depth + 1, size[1], size[2]), dtype=torch.float32, device=device)
    groups = [(x, [s for s in g]) for x, g in groupby(sorted(scan_starts(size, roi, overlap)), key=lambda s: s[0])]
    lo_real, hi_real = pads[0][0], pads[0][0] + real[0]  # slices of the padded axis 0 that are the image's
    y_crop = slice(pads[1][0], pads[1][0] + real[1])
    z_crop = slice(pads[2][0], pads[2][0] + real[2])
    have_carry = False
    for g, (base, starts) in enumerate(groups):
        for b in range(0, len(starts), sw_batch_size):
            batch = starts[b:b + sw_batch_size]
            windows = torch.cat([image[:, :, x:x + roi[0], y:y + roi[1], z:z + roi[2]] for x, y, z in batch])
            with torch.autocast(device_type=device.type, enabled=amp):
                out = model(windows)
            out = torch.as_tensor(out).float()
            out *= weight[None]
            for i, (x, y, z) in enumerate(batch):
                px = 1 + x - base
                scores[shift:, px:px + roi[0], y:y + roi[1], z:z + roi[2]] += out[i]
                count[:, px:px + roi[0], y:y + roi[1], z:z + roi[2]] += weight
            del out, windows
        end = groups[g + 1][0] if g + 1 < len(groups) else size[0]  # later windows start at or after `end`
        n = end - base
        slab = scores[:, 1:1 + n]
        slab[shift:] /= count[:, 1:1 + n]
        if shift:
            slab[1:].sigmoid_()
            slab[0] = 0.5
        else:  # softmax over channels, in place
            slab -= slab.max(0, keepdim=True).values
            slab.exp_()
            slab /= slab.sum(0, keepdim=True)
        first = 0 if have_carry else 1  # buffer position of the first slice to hand out
        lo = max(base - 1 + first, lo_real)
        hi = min(end, hi_real)
        if hi > lo:
            p0 = 1 + lo - base
            consume(scores[:, p0:p0 + hi - lo, y_crop, z_crop], lo - lo_real)
        scores[:, 0].copy_(scores[:, n])
        have_carry = True
        keep = depth - n  # slices [end, base + depth) already hold contributions of this group's windows
        if keep > 0:
            _move(scores, 1 + n, 1, keep)
            _move(count, 1 + n, 1, keep)
        scores[:, 1 + max(keep, 0):].zero_()
        count[:, 1 + max(keep, 0):].zero_()
