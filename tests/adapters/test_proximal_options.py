"""Issue 14's ARENA options, each checked against hand-computed numbers on a few gates."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from arena_seg.adapters import ArenaConfig, ArenaOptimizer, inject, proximal_step
from arena_seg.adapters.proximal import adam_denominator
from arena_seg.training import methods


def _layer(gates: list[float], **options) -> nn.Sequential:
    model = nn.Sequential(nn.Linear(4, 4))
    plain = {"prox": "lr", "min_rank": 0, "lam_warmup": 0.0, "lam_ramp": 0.0, "refit": 0.0}  # each test adds one
    inject(model, ArenaConfig(rank=len(gates), targets=(r"^0$",), **{**plain, **options}))
    with torch.no_grad():
        model[0].gate.copy_(torch.tensor(gates))
    return model


def _close(x: torch.Tensor, expected: list[float]) -> bool:
    return torch.allclose(x, torch.tensor(expected), atol=1e-6, rtol=0)


def test_proximal_adam_thresholds_by_lr_lam_over_sqrt_v_hat():
    model = _layer([1.0, 1.0, 1.0], prox="adam", lam=0.05)
    gate = model[0].gate
    opt = torch.optim.AdamW([gate], lr=0.1, weight_decay=0.0)
    gate.grad = torch.tensor([0.1, 0.01, 0.001])
    opt.step()  # Adam's first step: m_hat = grad, sqrt(v_hat) = |grad|, so every gate moves by lr: 1 -> 0.9
    assert _close(adam_denominator(opt, gate), [0.1 + 1e-8, 0.01 + 1e-8, 0.001 + 1e-8])
    proximal_step(model, lr=0.1, optimizer=opt)
    # thresholds 0.1 * 0.05 / |grad| = 0.05, 0.5, 5: the gate with the small gradient dies, the others shrink
    assert _close(gate, [0.85, 0.4, 0.0])


def test_proximal_adam_before_any_step_does_not_shrink():
    model = _layer([0.3, -0.2], prox="adam", lam=10.0)
    proximal_step(model, lr=1.0, optimizer=torch.optim.AdamW([model[0].gate]))  # no second moment yet
    assert _close(model[0].gate, [0.3, -0.2])


def test_gate_sgd_is_a_plain_proximal_gradient_step():
    model = _layer([1.0, 0.5, -0.2], gate_optimizer="sgd", lam=0.5, gate_lr_mult=2.0)
    method = methods.Arena(model[0].config)
    optimizers = method.optimizers(model, lr=0.1, weight_decay=0.0)
    assert [type(o).__name__ for o in optimizers] == ["AdamW", "SGD"]
    assert optimizers[1].param_groups[0]["lr"] == pytest.approx(0.2)  # lr × gate_lr_mult
    model[0].gate.grad = torch.tensor([0.5, -0.5, 0.0])
    for opt in optimizers:
        opt.step()
    method.after_step(model, optimizers, step=0, total=10)
    # g - 0.2 * grad = (0.9, 0.6, -0.2), then soft threshold 0.2 * 0.5 = 0.1
    assert _close(model[0].gate, [0.8, 0.5, -0.1])


def test_lam_schedule_warmup_ramp_and_refit():
    config = ArenaConfig(lam=2.0, lam_warmup=0.2, lam_ramp=0.4, refit=0.1)
    factors = [config.lam_factor(p) for p in (0.0, 0.1, 0.2, 0.4, 0.6, 0.85, 0.9, 1.0)]
    assert factors == pytest.approx([0, 0, 0, 0.5, 1, 1, 0, 0])
    assert config.lam_at(0.4) == pytest.approx(1.0) and config.lam_at(None) == 2.0
    assert [config.refitting(p) for p in (0.89, 0.9, None)] == [False, True, False]


def test_schedule_follows_the_step_count():
    # 4 steps, λ = 0 for the first half: only steps 3 and 4 shrink (threshold lr·λ = 0.1 each)
    model = _layer([1.0, -0.5], lam=1.0, lam_warmup=0.5)
    opt = ArenaOptimizer(torch.optim.SGD([model[0].gate], lr=0.1), model, total_steps=4)
    seen = []
    for _ in range(4):
        opt.step()  # no gradient: only the proximal step moves the gates
        seen.extend(model[0].gate.detach().tolist())
    assert seen == pytest.approx([1.0, -0.5, 1.0, -0.5, 0.9, -0.4, 0.8, -0.3])


def test_min_rank_leaves_the_largest_gates_unshrunk():
    gates = [0.5, -0.3, 0.05, 0.02]
    free = _layer(gates, prox="fixed", lam=0.4)
    proximal_step(free, lr=1.0)
    assert _close(free[0].gate, [0.1, 0.0, 0.0, 0.0])
    floored = _layer(gates, prox="fixed", lam=0.4, min_rank=2)
    proximal_step(floored, lr=1.0)
    assert _close(floored[0].gate, [0.5, -0.3, 0.0, 0.0])  # the two largest keep their value, rank stays 2
    tight = _layer([0.1, 0.2], prox="fixed", lam=1.0, min_rank=5)  # a floor above the rank keeps every gate
    proximal_step(tight, lr=1.0)
    assert _close(tight[0].gate, [0.1, 0.2])


def test_refit_keeps_the_support_and_stops_shrinking():
    model = _layer([0.5, 0.05, -0.4], prox="fixed", lam=0.1, refit=0.2)
    proximal_step(model, lr=1.0, progress=0.5)  # l1 phase: the middle gate dies
    assert _close(model[0].gate, [0.4, 0.0, -0.3])
    with torch.no_grad():
        model[0].gate.add_(torch.tensor([0.01, 0.02, 0.0]))  # what an optimizer step would do to every gate
    proximal_step(model, lr=1.0, progress=0.9)  # refit: no shrinkage, the dead gate is held at zero
    assert _close(model[0].gate, [0.41, 0.0, -0.3])


def test_lora_drops_every_gate_penalty_option():
    arena = ArenaConfig(lam=0.3, prox="adam", lam_warmup=0.1, min_rank=2, refit=0.1, gate_lr_mult=4.0)
    lora = methods.build("lora", arena)
    assert (lora.config.lam, lora.config.prox, lora.config.min_rank, lora.config.refit) == (0.0, "lr", 0, 0.0)
    assert lora.config.gate_lr_mult == 4.0 and methods.build("arena", arena).config == arena


def test_lam_weight_params_scales_each_layer_by_the_root_of_its_rank_cost():
    # a rank of the 4->4 Linear costs 4 + 4 + 1 = 9 parameters, one of the 16->32 Linear 16 + 32 + 1 = 49
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(16, 32))
    config = ArenaConfig(rank=2, targets=(r"^\d$",), prox="lr", lam=0.1, lam_weight="params", min_rank=0,
                         lam_warmup=0.0, lam_ramp=0.0, refit=0.0)
    inject(model, config)
    assert [model[0].params_per_rank(), model[1].params_per_rank()] == [9, 49]
    weights = [model[0].lam_weight, model[1].lam_weight]
    assert weights == pytest.approx([(9 / 29) ** 0.5, (49 / 29) ** 0.5])  # mean cost (9 + 49) / 2 = 29
    with torch.no_grad():
        for layer in model:
            layer.gate.fill_(1.0)
    proximal_step(model, lr=1.0)  # threshold lr * λ * w per layer
    assert _close(model[0].gate, [1 - 0.1 * weights[0]] * 2)
    assert _close(model[1].gate, [1 - 0.1 * weights[1]] * 2)
    # "none" leaves one λ for every layer
    plain = nn.Sequential(nn.Linear(4, 4), nn.Linear(16, 32))
    inject(plain, ArenaConfig(rank=2, targets=(r"^\d$",), lam_weight="none"))
    assert [plain[0].lam_weight, plain[1].lam_weight] == [1.0, 1.0]


def test_lam_weight_params_counts_conv_ranks_and_survives_pruning():
    model = nn.Sequential(nn.Conv3d(2, 3, 3), nn.ConvTranspose3d(3, 2, 2))
    inject(model, ArenaConfig(rank=4, targets=(r"^\d$",), lam_weight="params"))
    # Conv3d: A row 2*27, B column 3; ConvTranspose3d: A (3 x r x 2³) slice 3*8, B column 2; plus the gate
    assert [model[0].params_per_rank(), model[1].params_per_rank()] == [2 * 27 + 3 + 1, 3 * 8 + 2 + 1]
    with torch.no_grad():
        model[0].gate.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))
    model[0].prune()
    assert model[0].params_per_rank() == 58 and model[0].rank == 1


def test_lam_weight_rejects_unknown_values():
    with pytest.raises(ValueError, match="lam_weight"):
        ArenaConfig(lam_weight="size")
