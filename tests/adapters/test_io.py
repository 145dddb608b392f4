import copy
import json

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from arena_seg.adapters import (
    ArenaConfig,
    adapter_paths,
    arena_layers,
    base_weights_sha256,
    effective_ranks,
    inject,
    load_adapter,
    merge,
    prune,
    read_manifest,
    save_adapter,
)

from .helpers import max_diff, randomize

CONFIG = ArenaConfig(rank=4, lam=0.01, targets=(r"^enc\.\d$", r"^up$"), trainable=(r"^head$", r"^bn$"))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv3d(4, 4, 3, stride=2, padding=1))
        self.up = nn.ConvTranspose3d(4, 4, 2, stride=2)
        self.bn = nn.BatchNorm3d(4)
        self.head = nn.Conv3d(4, 2, 1)

    def forward(self, x):
        return self.head(self.bn(self.up(self.enc(x))))


@pytest.fixture
def trained(tmp_path):
    """A plain base, and a copy of it with a pruned, randomised adapter and a changed head, saved to disk."""
    torch.manual_seed(0)
    base = Net().eval()
    model = copy.deepcopy(base)
    inject(model, CONFIG)
    randomize(model, std=0.1)
    with torch.no_grad():
        model.enc[2].gate[[0, 3]] = 0.0
        model.enc[0].gate.zero_()  # a layer that ends at rank 0
        model.head.weight.add_(1.0)
        model.bn.running_mean.add_(0.5)  # trainable-module buffers travel with the adapter
    prune(model)
    path = tmp_path / "run" / "adapter"
    manifest = save_adapter(model, path, metadata={"organ": "liver", "shots": 5})
    return base, model, path, manifest


def test_files_and_manifest(trained):
    base, model, path, manifest = trained
    weights, manifest_path = adapter_paths(path)
    assert weights.name == "adapter.safetensors" and manifest_path.name == "adapter.json"
    assert weights.is_file() and manifest_path.is_file()
    assert json.loads(manifest_path.read_text()) == manifest == read_manifest(weights)
    assert manifest["ranks"] == {"enc.0": 0, "enc.2": 2, "up": 4}
    assert manifest["targets"] == ["enc.0", "enc.2", "up"]
    assert manifest["config"] == CONFIG.to_dict()
    assert manifest["metadata"] == {"organ": "liver", "shots": 5}
    bn = ["bn.weight", "bn.bias", "bn.running_mean", "bn.running_var", "bn.num_batches_tracked"]
    assert manifest["trainable_keys"] == [*bn, "head.weight", "head.bias"]
    # the hash of the injected model equals the plain base's, computed with the same exclusions
    assert manifest["base_sha256"] == base_weights_sha256(base, exclude=CONFIG.trainable)
    assert manifest["base_sha256"] == base_weights_sha256(model)
    assert base_weights_sha256(base.double(), exclude=CONFIG.trainable) == manifest["base_sha256"]
    assert base_weights_sha256(base) != manifest["base_sha256"]  # the head counts when not excluded


@pytest.mark.parametrize("onto", ["plain", "injected"])
def test_round_trip(trained, onto):
    base, model, path, manifest = trained
    x = torch.randn(1, 1, 8, 8, 8)
    fresh = copy.deepcopy(base)
    if onto == "injected":
        inject(fresh, CONFIG)
        assert effective_ranks(fresh) == {"enc.0": 4, "enc.2": 4, "up": 4}
    assert load_adapter(fresh, path) == manifest
    assert {n: layer.rank for n, layer in arena_layers(fresh).items()} == manifest["ranks"]
    # the loaded model trains the same tensors as the saved one
    grads = {n for n, p in fresh.named_parameters() if p.requires_grad}
    assert grads == {n for n, p in model.named_parameters() if p.requires_grad}
    with torch.no_grad():
        assert max_diff(fresh(x), model(x)) == 0.0
        assert max_diff(merge(fresh)(x), model(x)) <= 1e-4


def test_weights_file_holds_only_adapter_and_trainable_tensors(trained):
    _, model, path, manifest = trained
    keys = set(load_file(str(adapter_paths(path)[0])))
    adapter = {f"{n}.{p}" for n in manifest["targets"] for p in ("lora_A.weight", "lora_B.weight", "gate")}
    assert keys == adapter | set(manifest["trainable_keys"])
    assert not any("base_layer" in k for k in keys)


def test_wrong_base_is_refused(trained):
    base, _, path, manifest = trained
    other = copy.deepcopy(base)
    with torch.no_grad():
        other.enc[2].weight[0, 0, 0, 0, 0] += 1e-3
    with pytest.raises(ValueError, match="sha256") as err:
        load_adapter(other, path)
    msg = str(err.value)
    assert manifest["base_sha256"] in msg and base_weights_sha256(other, CONFIG.trainable) in msg
    assert "adapter.safetensors" in msg
    assert not arena_layers(other)  # refused before touching the model


def test_missing_and_corrupt_files(trained, tmp_path):
    base, _, path, _ = trained
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_adapter(copy.deepcopy(base), tmp_path / "nope")
    weights, _ = adapter_paths(path)
    weights.write_bytes(weights.read_bytes()[:-1] + b" ")
    with pytest.raises(ValueError, match="sha256 recorded"):
        load_adapter(copy.deepcopy(base), path)
    weights.unlink()
    with pytest.raises(FileNotFoundError, match="adapter.safetensors"):
        load_adapter(copy.deepcopy(base), path)


def test_save_refusals(tmp_path):
    model = Net()
    with pytest.raises(ValueError, match="no ARENA adapters"):
        save_adapter(model, tmp_path / "a")
    inject(model, CONFIG)
    with pytest.raises(TypeError):
        save_adapter(model, tmp_path / "a", metadata={"bad": object()})
    assert not (tmp_path / "a.safetensors").exists()
    model.up.merge()
    with pytest.raises(ValueError, match="merged"):
        save_adapter(model, tmp_path / "a")


def test_load_onto_mismatched_injection_is_refused(trained):
    base, _, path, _ = trained
    other = copy.deepcopy(base)
    inject(other, ArenaConfig(rank=4, targets=(r"^up$",), trainable=(r"^head$",)))
    with pytest.raises(ValueError, match="wrapped layers differ"):
        load_adapter(other, path)


def test_adapter_paths():
    for p in ("d/x", "d/x.safetensors", "d/x.json"):
        w, m = adapter_paths(p)
        assert (str(w), str(m)) == ("d/x.safetensors", "d/x.json")
    assert adapter_paths("d/x.v2")[1].name == "x.v2.json"
