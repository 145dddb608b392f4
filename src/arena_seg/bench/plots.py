"""Benchmark figures (matplotlib, Agg): Dice vs trainable parameters, Dice vs initial rank, gates over training,
and the cost ratios against their targets."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .protocol import RANKED
from .report import short_names, summarize

COLOURS = {"arena": "tab:red", "lora": "tab:blue", "full": "black", "linear": "tab:gray", "bitfit": "tab:olive",
           "peft-lora": "tab:cyan", "peft-adalora": "tab:purple"}


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _grid(results: dict):
    summary = summarize(results)
    groups = [g for g in ("novel", "base") if g in results["organs"].values()]
    shots = sorted({r["k"] for r in summary})
    return summary, groups, shots


def dice_vs_params(results: dict, path: Path) -> Path:
    """One panel per (organ group, k): mean Dice against trainable parameters at the end (log x)."""
    plt = _plt()
    summary, groups, shots = _grid(results)
    fig, axes = plt.subplots(len(groups), len(shots), figsize=(4.2 * len(shots), 3.6 * len(groups)), squeeze=False)
    for gi, group in enumerate(groups):
        for ki, k in enumerate(shots):
            ax = axes[gi][ki]
            seen: set[str] = set()
            for r in (r for r in summary if r["k"] == k and r[f"dice_{group}"] is not None):
                x = max(r["params_end"] or 1, 1)
                ax.errorbar(x, r[f"dice_{group}"], yerr=r[f"sd_{group}"] or 0, fmt="o", capsize=3,
                            color=COLOURS.get(r["family"], "tab:green"),
                            label=None if r["family"] in seen else r["family"])
                seen.add(r["family"])
                ax.annotate(r["method"], (x, r[f"dice_{group}"]), fontsize=7, xytext=(3, 3),
                            textcoords="offset points")
            ax.set_xscale("log")
            _finish_axis(ax, f"{group} organs, k={k}", "trainable parameters (end)")
    return _save(plt, fig, path)


def dice_vs_rank(results: dict, path: Path) -> Path:
    """Dice against initial rank for ARENA, LoRA (and the peft peers); rank-free methods as horizontal lines."""
    plt = _plt()
    summary, groups, shots = _grid(results)
    fig, axes = plt.subplots(len(groups), len(shots), figsize=(4.2 * len(shots), 3.6 * len(groups)), squeeze=False)
    for gi, group in enumerate(groups):
        for ki, k in enumerate(shots):
            ax = axes[gi][ki]
            rows = [r for r in summary if r["k"] == k and r[f"dice_{group}"] is not None]
            for family in RANKED:
                pts = sorted((r["rank"], r[f"dice_{group}"], r[f"sd_{group}"] or 0) for r in rows
                             if r["family"] == family)
                if pts:
                    x, y, e = map(np.asarray, zip(*pts, strict=True))
                    ax.errorbar(x, y, yerr=e, marker="o", capsize=3, label=family, color=COLOURS[family])
            for r in (r for r in rows if r["family"] not in RANKED):
                ax.axhline(r[f"dice_{group}"], ls="--", lw=1, color=COLOURS.get(r["family"], "tab:green"),
                           label=r["method"])
            ax.set_xscale("log", base=2)
            _finish_axis(ax, f"{group} organs, k={k}", "initial rank")
    return _save(plt, fig, path)


def _finish_axis(ax, title: str, xlabel: str) -> None:
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("mean Dice")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def gates_over_training(run: dict, path: Path) -> Path:
    """Mean |gate| and non-zero gates per layer per epoch of one ARENA run, and every gate as a heat map."""
    plt = _plt()
    from matplotlib.ticker import MaxNLocator

    gates = run["gates"]
    short = short_names(list(gates))
    values = run.get("gate_values") or {}
    fig, axes = plt.subplots(1, 3 if values else 2, figsize=(15 if values else 10, 3.8))
    for name, g in gates.items():
        epochs = np.arange(len(g["mean_abs"]))
        axes[0].plot(epochs, g["mean_abs"], marker=".", label=short[name])
        axes[1].plot(epochs, g["nonzero"], marker=".", label=short[name])
    axes[0].set(title=f"{run['method']} k={run['k']} seed={run['seed']}: mean |gate|", xlabel="epoch")
    axes[1].set(title="non-zero gates (effective rank)", xlabel="epoch")
    for ax in axes[:2]:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if values:
        # rows: every gate of every layer (layer by layer), columns: epochs
        matrix = np.concatenate([np.abs(np.asarray(v, dtype=float)).T for v in values.values()], axis=0)
        im = axes[2].imshow(matrix, aspect="auto", interpolation="nearest", cmap="magma")
        edges = np.cumsum([len(v[0]) for v in values.values()])[:-1]
        for edge in edges:
            axes[2].axhline(edge - 0.5, color="white", lw=0.6)
        axes[2].set(title="|gate| per rank (layers stacked)", xlabel="epoch", ylabel="rank index")
        fig.colorbar(im, ax=axes[2])
    return _save(plt, fig, path)


def fewshot_plots(results: dict, out: Path) -> list[Path]:
    paths = [dice_vs_params(results, out / "dice_vs_params.png"), dice_vs_rank(results, out / "dice_vs_rank.png")]
    trace = results.get("trace_run")
    run = next((r for r in results["runs"] if trace and (r["method"], r["k"], r["seed"]) ==
                (trace["method"], trace["k"], trace["seed"])), None)
    if run is not None and run["gates"]:
        paths.append(gates_over_training(run, out / "gates.png"))
    return paths


def speed_plot(results: dict, path: Path) -> Path:
    """Every measured ratio per network as a bar, with its target as a tick."""
    plt = _plt()
    nets = results["networks"]
    fig, axes = plt.subplots(1, len(nets), figsize=(6 * len(nets), 3.8), squeeze=False)
    for ax, net in zip(axes[0], nets, strict=True):
        ratios = [r for r in net["ratios"] if r["value"] is not None]
        y = np.arange(len(ratios))
        colours = ["tab:green" if r.get("ok") else ("tab:red" if r.get("ok") is False else "tab:gray") for r in ratios]
        ax.barh(y, [r["value"] for r in ratios], color=colours)
        for yi, r in zip(y, ratios, strict=True):
            if r.get("target"):
                ax.plot([r["target"]] * 2, [yi - 0.4, yi + 0.4], color="black", lw=2)
        ax.set_yticks(y, [r["name"] for r in ratios], fontsize=8)
        ax.axvline(1.0, color="gray", lw=0.8, ls=":")
        ax.set_title(f"{net['name']} ({'×'.join(str(s) for s in net['size'])})")
        ax.set_xlabel("ratio (black tick: target)")
    return _save(plt, fig, path)
