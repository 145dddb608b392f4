"""Shared fixtures: tiny phantoms on disk and a tiny network in arena-seg's own format (seconds to make)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

REAL_CT = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-ct" / "abdomen-pelvis-3mm"
TINY_SPACING = (6.0, 6.0, 6.0)
TINY_PATCH = (32, 32, 64)  # SwinUNETR needs > 1 voxel at its 1/32 bottleneck to train


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory) -> Path:
    """Six phantoms at 6 mm (images/, labels/, labels.json): small enough for CPU training in seconds."""
    from arena_seg.data.phantoms import write_phantoms

    out = tmp_path_factory.mktemp("phantoms")
    write_phantoms(out, n=6, seed=11, spacing=TINY_SPACING)
    return out


@pytest.fixture(scope="session")
def make_tiny_network(tmp_path_factory):
    """Factory: a randomly initialised default-architecture SwinUNETR for the base organs at a given spacing,
    saved the way `arena-seg pretrain` saves. Coarser spacings make fewer sliding windows per volume."""
    from arena_seg.data.phantoms import BASE_ORGANS
    from arena_seg.models.registry import Preprocessing, build_network, get_spec, save_network

    def make(spacing: tuple[float, float, float] = TINY_SPACING, patch: tuple[int, int, int] = TINY_PATCH) -> Path:
        spec = get_spec("default")
        arch = {"class": spec.arch["class"], "kwargs": {**spec.arch["kwargs"], "out_channels": len(BASE_ORGANS) + 1}}
        torch.manual_seed(0)
        out = tmp_path_factory.mktemp("tiny") / "network"
        save_network(build_network(arch), out, name="default", arch=arch,
                     labels={n: i + 1 for i, n in enumerate(BASE_ORGANS)},
                     preprocessing=Preprocessing(spacing=spacing, patch=patch), targets=spec.targets, head=spec.head)
        return out

    return make


@pytest.fixture(scope="session")
def tiny_network_dir(make_tiny_network) -> Path:
    """The tiny network at 6 mm, patch 32×32×64."""
    return make_tiny_network()


@pytest.fixture()
def tiny_default(tiny_network_dir, monkeypatch) -> Path:
    """Make the registry's `default` model resolve to the tiny network."""
    monkeypatch.setenv("ARENA_SEG_DEFAULT_MODEL", str(tiny_network_dir))
    return tiny_network_dir
