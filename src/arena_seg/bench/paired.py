"""Issue 14's comparisons of ARENA with LoRA: paired differences over the same seeds and shots with a bootstrap
95 % CI, each family's spread over its initial ranks, and the share of adapter parameters ARENA keeps."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from .stats import group_dice
from .stats import mean as _mean


def bootstrap_ci(values: list[float], reps: int = 10_000, seed: int = 0) -> tuple[float, float] | None:
    """95 % percentile bootstrap interval of the mean of ``values`` (resampled with replacement); None if empty."""
    if not values:
        return None
    data = np.asarray(values, dtype=float)
    draws = np.random.default_rng(seed).choice(data, size=(reps, data.size), replace=True).mean(axis=1)
    low, high = np.percentile(draws, [2.5, 97.5])
    return float(low), float(high)


def _novel_by_run(results: dict) -> dict[tuple[str, int, int], float]:
    """Mean novel-organ Dice per (method, k, seed)."""
    out = {}
    for run in results["runs"]:
        value = group_dice(run, results["organs"], "novel")
        if value is not None:
            out[(run["method"], run["k"], run["seed"])] = value
    return out


def paired_differences(results: dict, arena: str, lora: str) -> list[dict]:
    """Per k: novel Dice of ``arena`` minus ``lora`` (method labels) on the seeds both ran, mean and bootstrap CI."""
    dice = _novel_by_run(results)
    rows = []
    for k in sorted({key[1] for key in dice}):
        seeds = sorted(s for (m, kk, s) in dice if m == arena and kk == k and (lora, k, s) in dice)
        diffs = [dice[(arena, k, s)] - dice[(lora, k, s)] for s in seeds]
        if diffs:
            rows.append({"arena": arena, "lora": lora, "k": k, "seeds": seeds, "differences": diffs,
                         "mean": float(np.mean(diffs)), "ci95": bootstrap_ci(diffs)})
    return rows


def rank_spread(results: dict, family: str) -> dict[int, dict]:
    """Per k: mean novel Dice of each initial rank of ``family`` and their spread (max − min)."""
    dice = _novel_by_run(results)
    by_k: dict[int, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for run in results["runs"]:
        key = (run["method"], run["k"], run["seed"])
        if run["family"] == family and run["rank"] is not None and key in dice:
            by_k[run["k"]][run["rank"]].append(dice[key])
    out = {}
    for k, ranks in sorted(by_k.items()):
        means = {r: float(np.mean(v)) for r, v in sorted(ranks.items())}
        out[k] = {"means": means, "spread": max(means.values()) - min(means.values()) if len(means) > 1 else None}
    return out


def kept_share(results: dict, method: str) -> float | None:
    """Mean share of its initial trainable parameters a method ends with (head included)."""
    return _mean([r["params_end"] / r["params_start"] for r in results["runs"]
                  if r["method"] == method and r["params_start"]])


def budget_partner(results: dict, arena: str) -> str | None:
    """The smallest LoRA that trains at least as many parameters as ``arena`` keeps (mean over its runs): beating
    it means better Dice for no more parameters. None when every LoRA is smaller."""
    kept = _mean([r["params_end"] for r in results["runs"] if r["method"] == arena])
    sizes = {r["method"]: r["params_start"] for r in results["runs"] if r["family"] == "lora"}
    larger = {m: n for m, n in sizes.items() if kept is not None and n >= kept}
    return min(larger, key=larger.get) if larger else None


def comparison(results: dict) -> dict:
    """Everything issue 14's targets need, from the runs there are (missing methods give empty entries)."""
    methods = {r["method"] for r in results["runs"]}
    loras = sorted(m for m in methods if m.startswith("lora-r"))
    out = {"vs_lora_r16": paired_differences(results, "arena-r16", "lora-r16") if "lora-r16" in methods else [],
           "vs_best_lora": [], "spread": {f: rank_spread(results, f) for f in ("arena", "lora")},
           "kept": {m: kept_share(results, m) for m in sorted(methods) if m.startswith("arena-r")}, "vs_budget": []}
    for arena in sorted((m for m in methods if m.startswith("arena-r")), key=lambda m: int(m[len("arena-r"):])):
        partner = budget_partner(results, arena)
        if partner is not None:
            out["vs_budget"] += paired_differences(results, arena, partner)
    dice = _novel_by_run(results)
    for k in sorted({key[1] for key in dice}):
        means = {m: _mean([v for (mm, kk, _), v in dice.items() if mm == m and kk == k]) for m in loras}
        means = {m: v for m, v in means.items() if v is not None}
        if means and "arena-r16" in methods:
            best = max(means, key=means.get)
            out["vs_best_lora"] += [r for r in paired_differences(results, "arena-r16", best) if r["k"] == k]
    return out


def _pairs_table(title: str, rows: list[dict]) -> list[str]:
    """A markdown section of paired differences (rows of :func:`paired_differences`); nothing when there are none."""
    if not rows:
        return []
    lines = [f"## {title}", "", "| ARENA | LoRA | k | seeds | mean difference | bootstrap 95 % CI |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        ci = f"[{r['ci95'][0]:+.3f}, {r['ci95'][1]:+.3f}]" if r["ci95"] else "n/a"
        lines.append(f"| {r['arena']} | {r['lora']} | {r['k']} | {len(r['seeds'])} | {r['mean']:+.3f} | {ci} |")
    return [*lines, ""]


def comparison_markdown(results: dict) -> list[str]:
    """Markdown lines of :func:`comparison` (empty when ARENA and LoRA did not both run)."""
    comp = comparison(results)
    lines = _pairs_table("ARENA − LoRA, paired (novel organs, same seeds and shots)",
                         comp["vs_lora_r16"] + comp["vs_best_lora"])
    lines += _pairs_table("ARENA − the smallest LoRA with at least ARENA's final parameters, paired", comp["vs_budget"])
    spread_rows = [(f, k, v) for f, by_k in comp["spread"].items() for k, v in by_k.items()]
    if spread_rows:
        lines += ["## Spread over initial ranks (novel Dice, mean over seeds)", "",
                  "| family | k | Dice per initial rank | spread (max − min) |", "|---|---|---|---|"]
        for family, k, v in spread_rows:
            per = ", ".join(f"r{r}: {d:.3f}" for r, d in v["means"].items())
            spread = f"{v['spread']:.3f}" if v["spread"] is not None else "n/a"
            lines.append(f"| {family} | {k} | {per} | {spread} |")
        lines.append("")
    if comp["kept"]:
        lines += ["Trainable parameters kept at the end (share of the start, head included): " + ", ".join(
            f"{m} {v:.0%}" for m, v in comp["kept"].items() if v is not None) + ".", ""]
    return lines
