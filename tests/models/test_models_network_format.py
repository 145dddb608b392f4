"""Our own network folder format: save_network / load_network."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from arena_seg.models import (
    CheckpointError,
    FoundationSpec,
    Preprocessing,
    build_network,
    load_network,
    save_network,
)
from arena_seg.models.checkpoint import CONFIG_FILE, WEIGHTS_FILE, sha256_file

# a tiny SegResNet: the format does not depend on the architecture, and its forward is cheap
TINY = FoundationSpec(
    name="tiny",
    description="tiny",
    labels={"liver": 1, "pancreas": 2},
    preprocessing=Preprocessing(spacing=(2.0, 2.0, 2.0), patch=(16, 16, 16)),
    targets=(r"conv[12]\.conv$",),
    head="conv_final.2.conv",
    arch={
        "class": "SegResNet",
        "kwargs": {
            "spatial_dims": 3,
            "in_channels": 1,
            "out_channels": 3,
            "init_filters": 8,
            "blocks_down": [1, 1],
            "blocks_up": [1],
        },
    },  # fmt: skip
    checkpoint_hint="test",
)


@pytest.fixture(scope="module")
def spec():
    return TINY


@pytest.fixture(scope="module")
def net(spec):
    torch.manual_seed(0)
    return build_network(spec.arch).eval()


@pytest.fixture()
def saved(tmp_path, net, spec):
    folder = tmp_path / "net"
    save_network(
        net, folder, name="liver-ft", arch=spec.arch, labels={"liver": 1, "pancreas": 2},
        preprocessing=spec.preprocessing, targets=spec.targets, head=spec.head,
        metadata={"description": "fine-tuned", "seed": 3},
    )  # fmt: skip
    return folder


def test_round_trip_outputs_equal(saved, net, spec):
    model, loaded = load_network(saved)
    assert not model.training
    assert loaded.name == "liver-ft" and loaded.description == "fine-tuned"
    assert loaded.labels == {"liver": 1, "pancreas": 2} and loaded.background_channel == 0
    assert (loaded.preprocessing, loaded.targets, loaded.head, loaded.arch) == (
        spec.preprocessing, spec.targets, spec.head, spec.arch,
    )  # fmt: skip
    config = json.loads((saved / CONFIG_FILE).read_text())
    assert config["sha256"] == sha256_file(saved / WEIGHTS_FILE) and config["metadata"]["seed"] == 3
    x = torch.randn(1, 1, 16, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x), net(x))
    assert load_network(saved / CONFIG_FILE)[1].name == "liver-ft"  # the json file path works too


def test_tampered_weights_are_detected(saved):
    weights = saved / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256") as err:
        load_network(saved)
    assert str(weights) in str(err.value)


def test_missing_files(saved, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_network(tmp_path / "nowhere")
    (saved / WEIGHTS_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=WEIGHTS_FILE):
        load_network(saved)
    (saved / CONFIG_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=CONFIG_FILE):
        load_network(saved)


def test_corrupt_json(saved):
    (saved / CONFIG_FILE).write_text('{"name": "x", ')
    with pytest.raises(CheckpointError, match="corrupt JSON") as err:
        load_network(saved)
    assert str(saved / CONFIG_FILE) in str(err.value)
    (saved / CONFIG_FILE).write_text('{"name": "x"}')
    with pytest.raises(CheckpointError, match="not an arena-seg-network"):
        load_network(saved)


def _rewrite(folder, state=None, **config_changes):
    config = json.loads((folder / CONFIG_FILE).read_text())
    if state is not None:
        save_file(state, str(folder / WEIGHTS_FILE))
        config["sha256"] = sha256_file(folder / WEIGHTS_FILE)
    config.update(config_changes)
    (folder / CONFIG_FILE).write_text(json.dumps(config))


def test_wrong_shape_is_reported(saved, spec):
    arch = json.loads(json.dumps(spec.arch))
    arch["kwargs"]["out_channels"] = 4
    _rewrite(saved, arch=arch)
    with pytest.raises(CheckpointError, match=r"shape mismatch.*conv_final\.2\.conv\.weight") as err:
        load_network(saved)
    assert str(saved / WEIGHTS_FILE) in str(err.value)


def test_extra_and_missing_keys_are_reported(saved):
    state = load_file(str(saved / WEIGHTS_FILE))
    state["extra.weight"] = torch.zeros(2)
    del state["convInit.conv.weight"]
    _rewrite(saved, state=state)
    with pytest.raises(CheckpointError) as err:
        load_network(saved)
    msg = str(err.value)
    assert str(saved / WEIGHTS_FILE) in msg and "extra.weight" in msg and "convInit.conv.weight" in msg


def test_bad_arch_and_metadata(saved, net, spec, tmp_path):
    _rewrite(saved, arch={"class": "NoSuchNet", "kwargs": {}})
    with pytest.raises(CheckpointError, match="bad arch"):
        load_network(saved)
    with pytest.raises(ValueError, match="not JSON-able"):
        save_network(
            net, tmp_path / "x", name="x", arch=spec.arch, labels=spec.labels, preprocessing=spec.preprocessing,
            targets=spec.targets, head=spec.head, metadata={"bad": object()},
        )  # fmt: skip
    assert not (tmp_path / "x").exists()
