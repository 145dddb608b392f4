"""The few-shot protocol's pure parts: method specs, presets, support draws, summaries and markdown."""

from __future__ import annotations

import pytest

from arena_seg.bench.protocol import FULL, QUICK, MethodSpec, draw_support, organ_groups, parse_methods
from arena_seg.bench.report import fewshot_markdown, short_names, summarize
from arena_seg.errors import InputError


def test_parse_methods_expands_ranks_keeps_order_and_drops_duplicates():
    specs = parse_methods(["arena:8,16", "lora-r4", "full", "arena:8", "peft-adalora:16"])
    assert [s.label for s in specs] == ["arena-r8", "arena-r16", "lora-r4", "full", "peft-adalora-r16"]
    assert specs[-1].is_peer and not specs[0].is_peer
    assert parse_methods(["linear bitfit"]) == [MethodSpec("linear"), MethodSpec("bitfit")]


@pytest.mark.parametrize("bad", ["arena", "full:4", "dora:4", "lora:0", "lora:x"])
def test_parse_methods_rejects_bad_specs(bad):
    with pytest.raises(InputError):
        parse_methods([bad])


def test_presets_follow_the_protocol():
    full = {s.label for s in parse_methods(list(FULL.methods))}
    assert {"arena-r8", "arena-r16", "arena-r32", "arena-r64", "lora-r4", "lora-r16", "lora-r64", "full", "linear",
            "bitfit", "peft-lora-r16", "peft-adalora-r16"} == full
    assert FULL.shots == (1, 5, 10) and len(FULL.seeds) == 3 and len(FULL.organs) == 10
    assert QUICK.shots == (1, 5) and "gallbladder" in QUICK.organs and QUICK.pool >= max(QUICK.shots)
    assert QUICK.with_overrides(epochs=1, lr=None).epochs == 1 and QUICK.with_overrides(lr=None).lr == QUICK.lr


def test_support_sets_are_seeded_draws_from_the_pool():
    pool = [{"id": str(i)} for i in range(10)]
    a, b = draw_support(pool, 5, seed=0), draw_support(pool, 5, seed=1)
    assert a == draw_support(pool, 5, seed=0) and a != b
    assert len({x["id"] for x in a}) == 5 and all(x in pool for x in a)
    with pytest.raises(InputError):
        draw_support(pool, 11, seed=0)


def test_organ_groups_split_known_from_new_organs():
    assert organ_groups(["liver", "gallbladder"], {"liver": 1}) == {"liver": "base", "gallbladder": "novel"}


def _run(method: str, family: str, rank, k: int, seed: int, dice: dict) -> dict:
    return {"method": method, "family": family, "rank": rank, "k": k, "seed": seed, "dice": dice,
            "params_start": 100, "params_end": 80, "effective_ranks": {"a.l1.qkv": 3, "a.l2.qkv": 5} if rank else {},
            "mean_effective_rank": 4.0 if rank else None, "train_seconds": 2.0, "peak_memory_mb": 10.0}


def test_summary_and_markdown_average_over_seeds_by_group():
    results = {"organs": {"liver": "base", "gallbladder": "novel"}, "methods": ["arena-r8", "linear"],
               "preset": {"name": "quick", "seeds": [0, 1], "epochs": 1, "num_samples": 1, "lr": 0.002, "lam": 1.0},
               "model": "default", "data": "phantoms", "test": ["t0"], "host": {"device": "cpu"}, "seconds": 3,
               "runs": [_run("arena-r8", "arena", 8, 1, 0, {"liver": 0.9, "gallbladder": 0.4}),
                        _run("arena-r8", "arena", 8, 1, 1, {"liver": 0.7, "gallbladder": 0.6}),
                        _run("linear", "linear", None, 1, 0, {"liver": 0.8, "gallbladder": None})]}
    rows = {r["method"]: r for r in summarize(results)}
    assert rows["arena-r8"]["n"] == 2
    assert rows["arena-r8"]["dice_base"] == pytest.approx(0.8) and rows["arena-r8"]["dice_novel"] == pytest.approx(0.5)
    assert rows["arena-r8"]["sd_novel"] == pytest.approx(0.1414, abs=1e-3)
    assert rows["linear"]["dice_novel"] is None and rows["linear"]["dice_base"] == pytest.approx(0.8)
    text = fewshot_markdown(results)
    assert "| arena-r8 |" in text and "**0.500 ± 0.141**" in text and "l1: 3, l2: 5" in text
    assert short_names(["a.l1.qkv", "a.l2.qkv"]) == {"a.l1.qkv": "l1", "a.l2.qkv": "l2"}


def test_markdown_parameters_at_the_end_are_the_mean_over_every_k():
    runs = [_run("arena-r8", "arena", 8, k, 0, {"liver": 0.9, "gallbladder": 0.5}) for k in (1, 5)]
    runs[0]["params_end"], runs[1]["params_end"] = 60, 40  # ARENA keeps a different share at each k
    results = {"organs": {"liver": "base", "gallbladder": "novel"}, "methods": ["arena-r8"],
               "preset": {"name": "quick", "seeds": [0], "epochs": 1, "num_samples": 1, "lr": 0.002, "lam": 1.0},
               "model": "default", "data": "phantoms", "test": ["t0"], "host": {"device": "cpu"}, "seconds": 3,
               "runs": runs}
    assert "| arena-r8 | 100 → 50 |" in fewshot_markdown(results)
