import json
import math

import pytest

from arena_seg.adapters import ArenaConfig, lora_config


def test_defaults():
    c = ArenaConfig()
    assert (c.rank, c.lam, c.alpha, c.gate_init, c.prox, c.lam_weight) == (64, 1e-4, None, 1.0, "adam", "params")
    assert (c.gate_lr_mult, c.gate_optimizer, c.lam_warmup, c.lam_ramp, c.min_rank, c.refit) == (
        10.0, "adamw", 0.1, 0.3, 1, 0.1)
    assert c.targets == (r"qkv$",) and c.trainable == ()
    assert c.scale == 1.0
    assert ArenaConfig(rank=8, alpha=16).scale == 2.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rank": 0}, "rank"),
        ({"rank": -3}, "rank"),
        ({"rank": 2.5}, "rank"),
        ({"rank": True}, "rank"),
        ({"lam": -1e-3}, "lam"),
        ({"lam": math.nan}, "lam"),
        ({"alpha": 0.0}, "alpha"),
        ({"gate_init": 0.0}, "gate_init"),
        ({"prox": "adamw"}, "prox"),
        ({"prox": "adam", "gate_optimizer": "sgd"}, "adam"),
        ({"gate_optimizer": "lion"}, "gate_optimizer"),
        ({"gate_lr_mult": 0.0}, "gate_lr_mult"),
        ({"lam_warmup": 1.0}, "lam_warmup"),
        ({"refit": -0.1}, "refit"),
        ({"lam_warmup": 0.5, "lam_ramp": 0.3, "refit": 0.2}, "leave some steps"),
        ({"min_rank": -1}, "min_rank"),
        ({"min_rank": 1.5}, "min_rank"),
        ({"targets": ()}, "targets"),
        ({"targets": ("qkv(",)}, "invalid regex"),
        ({"targets": (3,)}, "targets"),
        ({"trainable": ("[",)}, "trainable"),
    ],
)
def test_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ArenaConfig(**kwargs)


def test_json_round_trip():
    c = ArenaConfig(rank=4, lam=0.02, alpha=8, targets=("a$", "b"), trainable=("head",), gate_init=0.5, prox="fixed")
    d = json.loads(json.dumps(c.to_dict()))
    assert d["targets"] == ["a$", "b"]
    assert ArenaConfig.from_dict(d) == c
    with pytest.raises(ValueError, match="unknown keys"):
        ArenaConfig.from_dict({**d, "dropout": 0.1})


def test_single_string_pattern_is_one_pattern():
    assert ArenaConfig(targets="qkv$").targets == ("qkv$",)


def test_lora_config_is_fixed_rank():
    c = lora_config(rank=8)
    assert c.lam == 0.0 and c.rank == 8
    with pytest.raises(ValueError, match="lam"):
        lora_config(lam=0.1)
