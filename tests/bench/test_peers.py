"""HF peft's LoRA and AdaLoRA as external peers, trained by the engine on the layers ARENA would wrap."""

from __future__ import annotations

import pytest

from arena_seg import adapters
from arena_seg.bench.peers import PeerMethod, target_names
from arena_seg.inference.loading import load_model
from arena_seg.training.config import FinetuneConfig
from arena_seg.training.engine import finetune

pytest.importorskip("peft")


def _support(phantom_dir, n):
    names = sorted(p.name for p in (phantom_dir / "images").glob("*.nii.gz"))[:n]
    return [{"image": str(phantom_dir / "images" / f), "label": str(phantom_dir / "labels" / f)} for f in names]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["peft-lora", "peft-adalora"])
def test_peer_trains_through_the_engine_on_the_same_layers(phantom_dir, tiny_network_dir, kind):
    model, spec = load_model(str(tiny_network_dir))
    # peft's AdaLoRA wraps Linear layers only: it gets the qkv projections, LoRA every default target
    targets = (r"qkv$",) if kind == "peft-adalora" else spec.targets
    wrapped = target_names(model, targets)
    support = _support(phantom_dir, 1)
    config = FinetuneConfig(method="lora", rank=4, epochs=2, num_samples=1, device="cpu", targets=targets)
    state = PeerMethod(kind, 4, total_steps=config.epochs * len(support))
    result = finetune(model, spec, {"gallbladder": 8}, support, None, config, method=state)
    assert state.layers == wrapped == result.adapted_layers and len(wrapped) == (4 if kind == "peft-adalora" else 14)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {n for n in trainable if not n.startswith(spec.head)} == {
        n for n in trainable if ".lora_" in n}  # only peft's factors and the head train
    assert any(n.startswith(spec.head) for n in trainable)
    assert not adapters.arena_layers(model)
    ranks = state.effective_ranks(model)
    assert set(ranks) == set(wrapped)
    if kind == "peft-adalora":
        assert state.step == config.epochs * len(support)  # update_and_allocate after every optimizer step
        assert sum(ranks.values()) < 4 * len(wrapped)  # budget cut towards target_r = 2
        assert state.effective_parameters(model, result.params_end) < result.params_end
    else:
        assert set(ranks.values()) == {4}
        assert state.effective_parameters(model, result.params_end) == result.params_end


def test_peer_refuses_layers_peft_cannot_wrap(unet_dir):
    from arena_seg.bench.peers import UnsupportedLayersError

    model, spec = load_model(str(unet_dir))  # its targets include ConvTranspose3d, which peft's LoRA lacks
    with pytest.raises(UnsupportedLayersError, match="ConvTranspose3d"):
        PeerMethod("peft-lora", 2, total_steps=1).prepare(model, spec.head, spec.targets)
