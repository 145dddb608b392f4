"""A network that costs milliseconds per step yet has enough weights (3 M) for full fine-tuning's optimizer state
to show in peak memory: a small MONAI UNet saved in arena-seg's network format."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def unet_dir(tmp_path_factory) -> Path:
    from arena_seg.models.registry import Preprocessing, build_network, save_network

    arch = {"class": "UNet", "kwargs": {"spatial_dims": 3, "in_channels": 1, "out_channels": 3,
                                        "channels": [64, 256, 256], "strides": [2, 2], "num_res_units": 0}}
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("unet") / "network"
    save_network(build_network(arch), out, name="unet", arch=arch, labels={"a": 1, "b": 2},
                 preprocessing=Preprocessing(spacing=(6.0, 6.0, 6.0), patch=(16, 16, 16)),
                 targets=(r"submodule\.\d\.conv$",), head="model.2.conv")
    return out
