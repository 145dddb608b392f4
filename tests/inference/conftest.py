"""Fixtures for batch inference: a coarse tiny network (one sliding window per series) and small DICOM trees."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def coarse_network_dir(make_tiny_network) -> Path:
    """The tiny SwinUNETR of tests/conftest.py at 14 mm: a phantom at 8 mm (≤ 400 mm wide) fits one 32×32×64 window."""
    return make_tiny_network(spacing=(14.0, 14.0, 14.0), patch=(32, 32, 64))


@pytest.fixture()
def coarse_default(coarse_network_dir, monkeypatch) -> Path:
    """Make `default` resolve to the coarse network (also in subprocesses started by the test)."""
    monkeypatch.setenv("ARENA_SEG_DEFAULT_MODEL", str(coarse_network_dir))
    return coarse_network_dir


@pytest.fixture(scope="session")
def phantom_series(tmp_path_factory) -> Path:
    """Three phantom CT series at 8 mm: SOURCE/dicom/phantom_00{0,1,2}/CT_*.dcm (and images/, labels/)."""
    from arena_seg.data.phantoms import write_phantoms

    out = tmp_path_factory.mktemp("batch-phantoms")
    write_phantoms(out, n=3, seed=5, dicom=True, spacing=(8.0, 8.0, 8.0))
    return out
