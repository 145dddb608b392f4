"""The SwinUNETR patch merging of MONAI 0.9 - 1.4, which checkpoints trained with older MONAI need.

Its own module (torch only) so that :func:`arena_seg.models.spec.build_network` can resolve
:data:`LEGACY_MERGING` without importing the checkpoint loaders.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# SwinUNETR `downsample` value for the patch merging of MONAI <= 1.4 ("merging" before MONAI PR #8285), which
# checkpoints trained with older MONAI (FSEFT, CLIP-Driven, BTCV) need. Resolved in build_network.
LEGACY_MERGING = "merging_v090"


class LegacyPatchMerging(nn.Module):
    """3D patch merging exactly as in MONAI 0.9 - 1.4 ("merging"), which FSEFT copied and trained with.

    MONAI 1.5 (PR #8285) changed the 8-neighbour order of "merging" (the old one repeats two offsets and skips
    two), so old checkpoints load into a 1.5 "merging" SwinUNETR without error but compute something else.
    Same parameters and names as MONAI's PatchMerging (reduction, norm), so state_dict keys are unchanged.
    """

    # (d, h, w) offsets of x0..x7 in the old code
    OFFSETS = ((0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 0, 1), (0, 1, 0), (0, 0, 1), (1, 1, 1))

    def __init__(self, dim: int, norm_layer: type[nn.LayerNorm] = nn.LayerNorm, spatial_dims: int = 3) -> None:
        super().__init__()
        if spatial_dims != 3:
            raise ValueError("LegacyPatchMerging is 3D only")
        self.dim = dim
        self.reduction = nn.Linear(8 * dim, 2 * dim, bias=False)
        self.norm = norm_layer(8 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5:
            raise ValueError(f"expected a 5D (b, d, h, w, c) tensor, got shape {tuple(x.shape)}")
        _, d, h, w, _ = x.shape
        if d % 2 or h % 2 or w % 2:  # never with SwinUNETR (inputs divisible by 32); MONAI's corrected pad order
            x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2, 0, d % 2))
        x = torch.cat([x[:, i::2, j::2, k::2, :] for i, j, k in self.OFFSETS], -1)
        return self.reduction(self.norm(x))
