import pytest
import torch
from torch import nn

from arena_seg.adapters import (
    ArenaConfig,
    ArenaOptimizer,
    gate_l1,
    inject,
    proximal_step,
    prune,
    register_proximal_hook,
    soft_threshold,
)

GATES = [0.5, -0.5, 0.05, -0.02, 0.0, 1.0, -0.1]


def _model(prox: str = "lr", lam: float = 1.0) -> nn.Sequential:
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    # the plain soft threshold: no min_rank floor, no schedule
    inject(model, ArenaConfig(rank=len(GATES), lam=lam, prox=prox, targets=(r"^\d$",), min_rank=0, lam_warmup=0.0,
                              lam_ramp=0.0, refit=0.0))
    with torch.no_grad():
        for layer in model:
            layer.gate.copy_(torch.tensor(GATES))
    return model


def _expected(threshold: float) -> torch.Tensor:
    # hand-computed sign(g) * max(|g| - t, 0)
    return torch.tensor([max(abs(g) - threshold, 0.0) * (1 if g > 0 else -1) for g in GATES])


def test_soft_threshold_values():
    out = soft_threshold(torch.tensor(GATES), 0.1)
    assert torch.allclose(out, torch.tensor([0.4, -0.4, 0.0, 0.0, 0.0, 0.9, 0.0]), atol=1e-7, rtol=0)


@pytest.mark.parametrize(
    ("prox", "lr", "lam", "threshold"),
    [("lr", 0.1, None, 0.1), ("lr", 0.01, 5.0, 0.05), ("fixed", 10.0, None, 1.0), ("fixed", 1e-4, 0.03, 0.03)],
)
def test_proximal_step_modes(prox, lr, lam, threshold):
    model = _model(prox=prox, lam=1.0)
    proximal_step(model, lr=lr, lam=lam)
    for layer in model:
        assert torch.allclose(layer.gate, _expected(threshold), atol=1e-7, rtol=0)
        assert not layer.gate.grad_fn


def test_arena_optimizer_honours_scheduler_and_groups():
    model = _model(lam=2.0)
    gates = [layer.gate for layer in model]
    rest = [p for n, p in model.named_parameters() if "lora_" in n]
    # gates carry no gradient, so SGD leaves them alone and only the proximal step moves them
    inner = torch.optim.SGD([{"params": rest, "lr": 1.0}, {"params": gates, "lr": 0.05}])
    sched = torch.optim.lr_scheduler.StepLR(inner, step_size=1, gamma=0.1)
    opt = ArenaOptimizer(inner, model)
    opt.step()  # threshold 0.05 * 2 = 0.1
    assert torch.allclose(model[0].gate, _expected(0.1), atol=1e-7, rtol=0)
    sched.step()
    opt.step()  # lr 0.005 -> threshold 0.01, on top of the first step
    assert torch.allclose(model[0].gate, soft_threshold(_expected(0.1), 0.01), atol=1e-7, rtol=0)
    assert opt.param_groups is inner.param_groups  # delegation
    opt.zero_grad()


def test_post_step_hook_and_removal():
    model = _model(lam=1.0)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.2)
    handle = register_proximal_hook(opt, model)
    opt.step()
    assert torch.allclose(model[1].gate, _expected(0.2), atol=1e-7, rtol=0)
    handle.remove()
    opt.step()
    assert torch.allclose(model[1].gate, _expected(0.2), atol=1e-7, rtol=0)


def test_stale_optimizer_after_prune_is_reported():
    model = _model()
    opt = ArenaOptimizer(torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1), model)
    prune(model)  # the zero gate goes, gates become new Parameters
    with pytest.raises(RuntimeError, match="not in the optimizer"):
        opt.step()


def test_gate_l1():
    model = _model(lam=0.5)
    l1 = sum(abs(g) for g in GATES)
    assert gate_l1(model).item() == pytest.approx(2 * 0.5 * l1, abs=1e-6)
    assert gate_l1(model, lam=1.0).item() == pytest.approx(2 * l1, abs=1e-6)
    assert gate_l1(model).requires_grad
