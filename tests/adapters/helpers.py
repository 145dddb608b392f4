"""Shared test utilities."""

import torch
from torch import nn

from arena_seg.adapters import arena_layers


@torch.no_grad()
def randomize(model: nn.Module, seed: int = 0, std: float = 0.5) -> None:
    """Give every adapter non-zero A, B and gates (B = 0 would make equivalence tests trivial)."""
    g = torch.Generator().manual_seed(seed)
    for layer in arena_layers(model).values():
        for p in (layer.lora_A.weight, layer.lora_B.weight):
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * std)
        signs = torch.where(torch.rand(layer.rank, generator=g) < 0.5, -1.0, 1.0)
        layer.gate.copy_(signs * (0.5 + torch.rand(layer.rank, generator=g)))


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()
