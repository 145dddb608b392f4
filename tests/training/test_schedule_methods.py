"""Learning-rate schedule and method set-up: exact numbers, no training."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from arena_seg.adapters import ArenaConfig
from arena_seg.errors import InputError
from arena_seg.training import methods
from arena_seg.training.config import FinetuneConfig
from arena_seg.training.schedule import warmup_cosine


def test_warmup_then_cosine_to_floor():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = warmup_cosine(opt, total_steps=12, warmup_steps=2, floor=0.1)
    lrs = []
    for _ in range(12):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:3] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert lrs[3:] == sorted(lrs[3:], reverse=True)  # monotone decay after warm-up
    halfway = 2 + 5  # cosine is at its midpoint after half of the 10 decay steps
    assert lrs[halfway] == pytest.approx(0.1 + 0.9 * 0.5)


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(4, 12)
        self.body = nn.Linear(12, 4)
        self.head = nn.Conv3d(4, 2, 1)


def _trainable(model: nn.Module) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_methods_train_the_right_parameters():
    expect = {
        "full": {"qkv.weight", "qkv.bias", "body.weight", "body.bias", "head.weight", "head.bias"},
        "linear": {"head.weight", "head.bias"},
        "bitfit": {"qkv.bias", "body.bias", "head.weight", "head.bias"},
        "arena": {"qkv.lora_A.weight", "qkv.lora_B.weight", "qkv.gate", "head.weight", "head.bias"},
    }
    for method, names in expect.items():
        model = _Net()
        wrapped = methods.build(method, ArenaConfig(rank=3)).prepare(model, "head", (r"qkv$",))
        assert _trainable(model) == names, method
        assert wrapped == (["qkv"] if method == "arena" else [])


def test_gates_get_their_own_group_without_weight_decay():
    model = _Net()
    method = methods.build("arena", ArenaConfig(rank=3, gate_lr_mult=10.0))
    method.prepare(model, "head", (r"qkv$",))
    groups = method.param_groups(model, lr=0.1, weight_decay=0.01)
    by_name = {g["name"]: g for g in groups}
    assert by_name["gates"]["weight_decay"] == 0.0 and len(by_name["gates"]["params"]) == 1
    assert by_name["gates"]["lr"] == pytest.approx(1.0)
    assert by_name["weights"]["weight_decay"] == 0.01 and by_name["weights"]["lr"] == 0.1


def test_config_names_every_bad_field():
    with pytest.raises(InputError) as err:
        FinetuneConfig(method="magic", rank=0, lam=-1.0, epochs=0)
    for field in ("method", "rank", "lam", "epochs"):
        assert field in str(err.value)
