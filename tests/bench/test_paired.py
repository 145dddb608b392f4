"""Issue 14's comparison numbers (paired ARENA − LoRA differences, bootstrap CI, rank spread, kept parameters) on
hand-made runs with known answers, and the CPU preset's steps per k."""

from __future__ import annotations

import pytest

from arena_seg.bench.paired import (
    bootstrap_ci,
    budget_partner,
    comparison,
    comparison_markdown,
    paired_differences,
    rank_spread,
)
from arena_seg.bench.protocol import CPU


def _run(method: str, k: int, seed: int, novel: float, params: tuple[int, int] = (100, 100)) -> dict:
    family, _, rank = method.partition("-r")
    return {"method": method, "family": family, "rank": int(rank) if rank else None, "k": k, "seed": seed,
            "dice": {"gallbladder": novel, "pancreas": novel, "liver": 0.9},
            "params_start": params[0], "params_end": params[1]}


def _results() -> dict:
    runs = []
    for seed, (a16, l16, l4) in enumerate([(0.6, 0.5, 0.7), (0.7, 0.5, 0.7), (0.8, 0.5, 0.7)]):
        runs += [_run("arena-r16", 5, seed, a16, (100, 40)), _run("lora-r16", 5, seed, l16),
                 _run("lora-r4", 5, seed, l4), _run("arena-r8", 5, seed, a16 - 0.1, (50, 30))]
    runs.append(_run("lora-r16", 1, 0, 0.2))  # no ARENA partner at k=1: no pair
    return {"organs": {"gallbladder": "novel", "pancreas": "novel", "liver": "base"}, "runs": runs}


def test_bootstrap_ci_of_constant_and_spread_values():
    assert bootstrap_ci([0.2, 0.2, 0.2]) == pytest.approx((0.2, 0.2))
    low, high = bootstrap_ci([0.0, 1.0] * 10)
    assert 0.25 < low < 0.5 < high < 0.75 and bootstrap_ci([]) is None


def test_paired_differences_use_the_same_seeds():
    (row,) = paired_differences(_results(), "arena-r16", "lora-r16")
    assert row["k"] == 5 and row["seeds"] == [0, 1, 2]
    assert row["differences"] == pytest.approx([0.1, 0.2, 0.3]) and row["mean"] == pytest.approx(0.2)
    assert 0.1 - 1e-9 <= row["ci95"][0] <= 0.2 <= row["ci95"][1] <= 0.3 + 1e-9


def test_spread_kept_share_and_best_lora():
    spread = rank_spread(_results(), "arena")[5]
    assert spread["means"] == pytest.approx({8: 0.6, 16: 0.7}) and spread["spread"] == pytest.approx(0.1)
    lora = rank_spread(_results(), "lora")
    assert lora[5]["spread"] == pytest.approx(0.2) and lora[1]["spread"] is None
    comp = comparison(_results())
    assert comp["kept"] == pytest.approx({"arena-r16": 0.4, "arena-r8": 0.6})
    (best,) = comp["vs_best_lora"]
    assert best["lora"] == "lora-r4" and best["mean"] == pytest.approx(0.0)
    text = "\n".join(comparison_markdown(_results()))
    assert "| arena-r16 | lora-r16 | 5 | 3 | +0.200 |" in text and "arena-r16 40%" in text


def test_budget_partner_is_the_smallest_lora_at_least_as_large_as_what_arena_keeps():
    results = _results()  # arena-r16 keeps 40 parameters, arena-r8 30; both LoRAs train 100
    results["runs"] += [_run("lora-r2", 5, s, 0.1, (35, 35)) for s in range(3)]
    assert budget_partner(results, "arena-r8") == "lora-r2"  # 35 >= 30
    assert budget_partner(results, "arena-r16") in ("lora-r16", "lora-r4")  # 35 < 40: the next size up
    results["runs"] = [r for r in results["runs"] if r["method"] != "lora-r2"]
    for r in results["runs"]:
        if r["method"] == "lora-r4":
            r["params_start"] = r["params_end"] = 60
    assert budget_partner(results, "arena-r16") == "lora-r4"
    comp = comparison(results)
    by_arena = {row["arena"]: row for row in comp["vs_budget"]}
    assert by_arena["arena-r16"]["lora"] == "lora-r4" and by_arena["arena-r16"]["mean"] == pytest.approx(0.0)
    assert by_arena["arena-r8"]["mean"] == pytest.approx(-0.1)  # r8 (0.5, 0.6, 0.7) vs lora-r4's 0.7
    text = "\n".join(comparison_markdown(results))
    assert "smallest LoRA with at least ARENA's final parameters" in text
    assert "| arena-r8 | lora-r4 | 5 | 3 | -0.100 |" in text
    results["runs"] = [r for r in results["runs"] if r["family"] != "lora"]
    assert budget_partner(results, "arena-r16") is None


def test_cpu_preset_trains_every_k_the_same_number_of_steps():
    assert CPU.lam is None  # ARENA's own defaults
    assert [CPU.epochs_for(k) * k for k in CPU.shots] == [CPU.steps, CPU.steps]
    assert CPU.epochs_for(3) == -(-CPU.steps // 3)
