"""Benchmark outputs: results JSON, per-method summaries, and markdown tables."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from arena_seg import files

from .paired import comparison_markdown
from .stats import group_dice
from .stats import mean as _mean
from .stats import sd as _sd


def write_json(path: Path, data: dict) -> None:
    """Write atomically (:func:`arena_seg.files.write_json`), so a reader never sees half a file; NaN refused."""
    files.write_json(path, data, indent=1, allow_nan=False, default=str)


def summarize(results: dict) -> list[dict]:
    """One row per (method, k): Dice means (± sd over seeds) per group and organ, parameters, time, memory."""
    organs = results["organs"]
    rows: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for run in results["runs"]:
        rows[(run["method"], run["k"])].append(run)
    order = {m: i for i, m in enumerate(results["methods"])}
    out = []
    for (method, k), runs in sorted(rows.items(), key=lambda kv: (kv[0][1], order.get(kv[0][0], 99))):
        row = {"method": method, "family": runs[0]["family"], "rank": runs[0]["rank"], "k": k, "n": len(runs),
               "params_start": _mean([r["params_start"] for r in runs]),
               "params_end": _mean([r["params_end"] for r in runs]),
               "mean_effective_rank": _mean([r["mean_effective_rank"] for r in runs]),
               "train_seconds": _mean([r["train_seconds"] for r in runs]),
               "peak_memory_mb": _mean([r["peak_memory_mb"] for r in runs]),
               "organ_dice": {o: _mean([r["dice"].get(o) for r in runs]) for o in organs}}
        for group in ("all", "base", "novel"):
            values = [group_dice(r, organs, None if group == "all" else group) for r in runs]
            row[f"dice_{group}"], row[f"sd_{group}"] = _mean(values), _sd(values)
        out.append(row)
    return out


def short_names(names: list[str]) -> dict[str, str]:
    """Layer names without the dotted prefix and suffix they all share (``swinViT.layers1.0...qkv`` -> ``layers1``)."""
    parts = [n.split(".") for n in names]
    if len(parts) < 2:
        return {n: n for n in names}
    lo = 0
    while all(len(p) > lo + 1 for p in parts) and len({p[lo] for p in parts}) == 1:
        lo += 1
    hi = 0
    while all(len(p) > lo + hi + 1 for p in parts) and len({p[-1 - hi] for p in parts}) == 1:
        hi += 1
    return {n: ".".join(p[lo : len(p) - hi]) for n, p in zip(names, parts, strict=True)}


def _fmt(x: float | None, sd: float | None = None, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    return f"{x:.{digits}f} ± {sd:.{digits}f}" if sd is not None else f"{x:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def _length(preset: dict) -> str:
    steps = preset.get("steps")
    return f"{steps} optimizer steps a run (epochs = ⌈{steps}/k⌉)" if steps else f"{preset['epochs']} epochs"


def fewshot_markdown(results: dict) -> str:
    """The few-shot results as markdown: Dice by method and k (base / novel), per organ, and ranks."""
    summary = summarize(results)
    organs = results["organs"]
    groups = [g for g in ("novel", "base") if g in organs.values()]
    shots = sorted({r["k"] for r in summary})
    preset = results["preset"]
    lines = [f"# Few-shot benchmark: preset {preset['name']}, model {results['model']}", "",
             f"Data: {results['data']}; {len(results['test'])} held-out test volumes; seeds {preset['seeds']}; "
             f"{_length(preset)}, {preset['num_samples']} patches per volume per epoch, lr {preset['lr']}, "
             f"λ {preset['lam'] if preset['lam'] is not None else 'default'}. Organs: " + "; ".join(
                 f"{g} {', '.join(o for o, v in organs.items() if v == g)}" for g in groups) + ".",
             f"Device: {results['host'].get('gpu') or results['host']['device']}; "
             f"this pass {results.get('seconds', 0):.0f} s, the runs' own training and testing "
             f"{sum(r.get('train_seconds', 0) + r.get('eval_seconds', 0) for r in results['runs']):.0f} s "
             "(runs kept by --resume count in the second figure only). Dice on held-out volumes, mean ± sd over "
             "seeds.", ""]
    if results.get("skipped"):
        lines += [f"Skipped: {', '.join(results['skipped'])}.", ""]
    if results.get("stopped"):
        lines += [f"Incomplete: {results['stopped']}.", ""]
    by = {(r["method"], r["k"]): r for r in summary}
    methods = [m for m in results["methods"] if any((m, k) in by for k in shots)]
    best = {(k, g): max((r[f"dice_{g}"] for r in summary if r["k"] == k and r[f"dice_{g}"] is not None),
                        default=None) for k in shots for g in groups}
    header = ["method", "trainable params (start → end)"] + [f"k={k} {g}" for k in shots for g in groups]
    header += ["train s / run", "peak MB"]
    rows = []
    for m in methods:
        first = next(by[(m, k)] for k in shots if (m, k) in by)
        # what ARENA keeps differs with k: the mean over every run of the method, not k's first row
        ends = [r["params_end"] for r in results["runs"] if r["method"] == m]
        cells = [m, f"{first['params_start']:,.0f} → {_mean(ends) if ends else first['params_end']:,.0f}"]
        for k in shots:
            for g in groups:
                r = by.get((m, k))
                cell = _fmt(r[f"dice_{g}"], r[f"sd_{g}"]) if r else "–"
                cells.append(f"**{cell}**" if r and r[f"dice_{g}"] is not None and r[f"dice_{g}"] == best[(k, g)]
                             else cell)
        cells += [_fmt(_mean([by[(m, k)]["train_seconds"] for k in shots if (m, k) in by]), digits=0),
                  _fmt(_mean([by[(m, k)]["peak_memory_mb"] for k in shots if (m, k) in by]), digits=0)]
        rows.append(cells)
    lines += ["## Mean Dice by method and shots", ""] + _table(header, rows) + [""]
    lines += ["Trainable parameters at the end count only the ranks left after pruning (ARENA, AdaLoRA).", ""]
    lines += comparison_markdown(results)
    organ_names = list(organs)
    rows = [[r["method"], str(r["k"])] + [_fmt(r["organ_dice"][o]) for o in organ_names] for r in summary]
    lines += ["## Dice per organ", ""] + _table(["method", "k"] + [f"{o} ({organs[o]})" for o in organ_names], rows)
    ranked = [r for r in results["runs"] if r["effective_ranks"]]
    if ranked:
        rows = []
        for r in ranked:
            short = short_names(list(r["effective_ranks"]))
            rows.append([r["method"], str(r["k"]), str(r["seed"]), _fmt(r["mean_effective_rank"], digits=1),
                         ", ".join(f"{short[layer]}: {v}" for layer, v in r["effective_ranks"].items())])
        lines += ["", "## Effective ranks after training", ""]
        lines += _table(["method", "k", "seed", "mean rank", "per layer"], rows)
    return "\n".join(lines) + "\n"


def speed_markdown(results: dict) -> str:
    """The cost benchmark as markdown: one table of measurements and one of ratios against targets per network."""
    lines = ["# Cost benchmark", "", f"Device: {results['host'].get('gpu') or results['host']['device']}; "
             f"torch {results['host']['torch']}; peft {results['host'].get('peft') or 'not installed'}.", ""]
    for net in results["networks"]:
        shape = "×".join(str(s) for s in net["size"])
        lines += [f"## {net['name']} (input {shape}, batch {net['batch']}, rank {net['rank']}, "
                  f"{net['params']:,} parameters)", ""]
        rows = [[name, _fmt(c.get("step_ms"), digits=1), _fmt(c.get("memory_mb"), digits=0),
                 f"{c['trainable']:,}" if c.get("trainable") is not None else "n/a"]
                for name, c in net["train"].items()]
        lines += _table(["training config", "step ms (median)", "peak memory MB", "trainable params"], rows) + [""]
        rows = [[name, _fmt(v.get("latency_ms"), digits=1), _fmt(v.get("volumes_per_min"), digits=2)]
                for name, v in net["inference"].items()]
        lines += _table(["inference", "latency ms (median)", "sliding-window volumes/min"], rows) + [""]
        rows = [[r["name"], _fmt(r["value"]), f"≤ {r['target']}" if r.get("target") else "",
                 {True: "pass", False: "FAIL", None: ""}[r.get("ok")]] for r in net["ratios"]]
        lines += _table(["ratio", "value", "target", ""], rows) + [""]
    lines += [f"Memory: {results['memory_note']}", ""]
    return "\n".join(lines)
