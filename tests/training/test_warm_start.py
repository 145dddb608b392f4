"""Warm start: a saved adapter loaded into a fresh foundation network is the saved one (adapters, ranks and the
head rows of the organs the run learns), and the engine trains on from it."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from arena_seg import adapters
from arena_seg.errors import InputError
from arena_seg.models.registry import load_network, replace_head
from arena_seg.training.config import FinetuneConfig
from arena_seg.training.engine import finetune
from arena_seg.training.methods import build
from arena_seg.training.warm_start import WarmStart, adapter_file, load_warm_start

VERSION_LABELS = {"pancreas": 1, "gallbladder": 2}  # the saved run learned two organs


@pytest.fixture()
def saved(tiny_network_dir, tmp_path):
    """An adapter saved from a pruned ARENA model whose adapters and head are non-trivial (B random, some gates 0)."""
    model, spec = load_network(tiny_network_dir)
    replace_head(model, spec.head, [0, None, None])
    build("arena", adapters.ArenaConfig(rank=4)).prepare(model, spec.head, spec.targets)
    torch.manual_seed(1)
    with torch.no_grad():
        for layer in adapters.arena_layers(model).values():
            layer.lora_B.weight.normal_()
            layer.gate[0] = 0.0  # one rank pruned away
    adapters.prune(model)
    adapters.save_adapter(model, tmp_path / "v001" / "adapter.safetensors")
    return tmp_path / "v001", spec


def test_the_loaded_adapter_equals_the_saved_one(tiny_network_dir, saved):
    folder, spec = saved
    model, _ = load_network(tiny_network_dir)  # a fresh foundation, as a training run starts from
    manifest = load_warm_start(model, spec.head, adapter_file(folder), VERSION_LABELS, ["gallbladder"])
    tensors = load_file(str(folder / "adapter.safetensors"))
    state = model.state_dict()
    head = set(manifest["trainable_keys"])
    for key, value in tensors.items():
        if key not in head:
            assert torch.equal(state[key], value), key
    assert {n: layer.rank for n, layer in adapters.arena_layers(model).items()} == manifest["ranks"]
    assert all(rank == 3 for rank in manifest["ranks"].values())
    # the head keeps background and gallbladder's saved rows, in the run's order
    weight = next(k for k in head if k.endswith("weight"))
    bias = next(k for k in head if k.endswith("bias"))
    assert torch.equal(state[weight], tensors[weight][[0, 2]]) and torch.equal(state[bias], tensors[bias][[0, 2]])
    # what trains: the adapters and the head, nothing of the foundation
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {k for k in tensors if k not in head} | head


def test_an_organ_the_adapter_did_not_learn_or_a_run_without_adapter_is_refused(tiny_network_dir, saved, tmp_path):
    folder, spec = saved
    model, _ = load_network(tiny_network_dir)
    with pytest.raises(InputError, match="did not learn liver"):
        load_warm_start(model, spec.head, adapter_file(folder), VERSION_LABELS, ["liver"])
    with pytest.raises(InputError, match="no adapter"):
        adapter_file(tmp_path / "linear-run")


def test_the_engine_trains_on_from_the_adapter(tiny_default, saved, phantom_dir):
    folder, spec = saved
    model, spec = load_network(tiny_default)
    before = load_file(str(folder / "adapter.safetensors"))
    items = [{"image": str(phantom_dir / "images" / "phantom_000.nii.gz"),
              "label": str(phantom_dir / "labels" / "phantom_000.nii.gz")}]
    config = FinetuneConfig(epochs=1, num_samples=1, warmup_epochs=0)
    result = finetune(model, spec, {"gallbladder": 8}, items, config=config,
                      method=WarmStart(adapter_file(folder), VERSION_LABELS, ["gallbladder"]))
    assert result.labels == {"gallbladder": 1} and len(result.history) == 1
    assert set(result.ranks) == set(adapters.arena_layers(model)) and max(result.ranks.values()) <= 3
    changed = [k for k, v in model.state_dict().items() if k in before and "lora_B" in k
               and v.shape == before[k].shape and not torch.equal(v, before[k])]
    assert changed  # it trained the loaded adapters, not fresh ones
