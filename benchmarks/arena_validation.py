"""Choose ARENA's defaults on VALIDATION phantoms (seed 3000: apart from the benchmark's seed-0 phantoms and the
CLI run's seed-2000 ones): each variant fine-tunes the default network on the same k shots per seed and is scored
on held-out validation phantoms. One JSON per run under OUT (skipped when present), so it resumes.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/arena_validation.py OUT --organ gallbladder --shots 5 \
        --seeds 1 2 --epochs 24 --variants arena adam5 lora
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/arena_validation.py OUT --organ gallbladder pancreas --rank 64 \
        --shots 5 --seeds 1 --epochs 32 --pool 10 --test 4 --variants params1e-4 lora   # the CPU preset's setting
    .venv/bin/python benchmarks/arena_validation.py OUT --probe      # gate gradient scale (sets prox='adam' λ)
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch

from arena_seg.bench.protocol import draw_support
from arena_seg.training.config import FinetuneConfig
from arena_seg.training.engine import finetune
from arena_seg.training.evaluate import evaluate

#: the candidates compared (ArenaConfig options); "lora" is fixed-rank LoRA
VARIANTS = {
    # the former default (prox "lr", λ 0.5, no schedule, no floor, no refit), written out so it stays what it was
    "arena": {"method": "arena", "prox": "lr", "lam": 0.5, "lam_warmup": 0.0, "lam_ramp": 0.0, "min_rank": 0,
              "refit": 0.0, "lam_weight": "none"},
    "lora": {"method": "lora"},
    # proximal Adam: λ in the loss's units (a gate lives while its mean |dL/dg| exceeds λ), SoRA-style λ = 0 for
    # the first 10 % of the steps and a ramp over the next 30 %, a 10 % refit at the end, no layer below rank 1.
    # Gate gradients measured by --probe after 2 epochs: 1e-7 (deep qkv) to 3e-4 (decoder1), growing with B
    "adam6": {"method": "arena", "prox": "adam", "lam": 1e-6, "lam_warmup": 0.1, "lam_ramp": 0.3, "refit": 0.1,
              "min_rank": 1, "lam_weight": "none"},
    "adam5": {"method": "arena", "prox": "adam", "lam": 1e-5, "lam_warmup": 0.1, "lam_ramp": 0.3, "refit": 0.1,
              "min_rank": 1, "lam_weight": "none"},
    "adam4": {"method": "arena", "prox": "adam", "lam": 1e-4, "lam_warmup": 0.1, "lam_ramp": 0.3, "refit": 0.1,
              "min_rank": 1, "lam_weight": "none"},
    # plain proximal SGD on the gates: with gradients of 1e-7..3e-4 and a gate lr of 0.05 a gate moves 1e-8..1e-5
    # a step, so the gates stay where they start (not run: the probe's numbers rule it out)
    "sgd": {"method": "arena", "gate_optimizer": "sgd", "lam": 1e-5, "lam_warmup": 0.1, "lam_ramp": 0.3,
            "refit": 0.1, "min_rank": 1, "lam_weight": "none"},
    "lr-mult1": {"method": "arena", "gate_lr_mult": 1.0, "lam": 1e-5, "lam_weight": "none"},
    # group-lasso λ (issue 14's parameter target): each layer's λ times sqrt(its parameters per rank / their mean)
    "params3e-5": {"method": "arena", "lam": 3e-5, "lam_weight": "params"},
    "params1e-4": {"method": "arena", "lam": 1e-4, "lam_weight": "params"},
}


def data(folder: Path, n: int) -> list[dict]:
    from arena_seg.data.phantoms import write_phantoms

    marker = folder / "validation-phantoms.json"
    stamp = {"n": n, "seed": 3000, "spacing": 3.0}
    if not (marker.is_file() and json.loads(marker.read_text()) == stamp):
        write_phantoms(folder, n=n, seed=3000, spacing=(3.0, 3.0, 3.0), prefix="val")
        marker.write_text(json.dumps(stamp) + "\n")
    return [{"image": str(folder / "images" / f"val_{i:03d}.nii.gz"),
             "label": str(folder / "labels" / f"val_{i:03d}.nii.gz"), "id": f"val_{i:03d}"} for i in range(n)]


def probe(base, spec, organs, support) -> None:
    """Two epochs of LoRA: per-layer mean |m_hat| and sqrt(v_hat) of the gates, the scale λ compares with."""
    from arena_seg.adapters import arena_layers
    from arena_seg.training import methods

    seen = {}

    class Probe(methods.Arena):
        def after_step(self, model, optimizers, step, total):
            for opt in optimizers:
                for name, layer in arena_layers(model).items():
                    state = opt.state.get(layer.gate)
                    if state:
                        beta1, beta2 = next(g["betas"] for g in opt.param_groups if g.get("name") == "gates")
                        t = float(state["step"])
                        m = (state["exp_avg"] / (1 - beta1**t)).abs().mean().item()
                        v = (state["exp_avg_sq"] / (1 - beta2**t)).sqrt().mean().item()
                        seen[name] = (m, v)

    model = copy.deepcopy(base)
    config = FinetuneConfig(method="lora", epochs=2, device="cpu")
    finetune(model, spec, organs, support, None, config, method=Probe(config.arena, "lora"))
    for name, (m, v) in seen.items():
        print(f"{name:40s} mean|m_hat| {m:.2e}  mean sqrt(v_hat) {v:.2e}")


def table(out: Path) -> None:
    """One row per run file: variant, seed, Dice, parameters kept, ranks per layer, time."""
    print("| organ | variant | options | seed | Dice novel | Dice liver | params start → end | ranks (qkv 1-4; decoder "
          "5→1) | train s |\n|---|---|---|---|---|---|---|---|---|")
    for path in sorted(out.glob("*-s*.json")):
        r = json.loads(path.read_text())
        opts = ", ".join(f"{k} {v}" for k, v in r["options"].items() if k != "method") or r["options"]["method"]
        if "rank" in r:
            opts = f"r{r['rank']}, {opts}"
        novel = np.mean([v for k, v in r["dice"].items() if k != "liver"])  # the novel organs' mean
        print(f"| {r['organ']} | {r['variant']} | {opts} | {r['seed']} | {novel:.3f} | {r['dice']['liver']:.3f} | "
              f"{r['params_start']:,} → {r['params_end']:,} | {' '.join(str(v) for v in r['ranks'].values())} | "
              f"{r['train_seconds']:.0f} |")


def main() -> None:
    from arena_seg.data.phantoms import PHANTOM_LABELS
    from arena_seg.inference.loading import load_model

    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--organ", nargs="+", default=["gallbladder"], help="novel organ(s), learnt with the liver")
    p.add_argument("--rank", type=int, default=16, help="initial rank (default 16, as the first runs)")
    p.add_argument("--shots", type=int, default=5)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    p.add_argument("--epochs", type=int, default=24)
    p.add_argument("--variants", nargs="+", default=["arena", "adam5", "lora"])
    p.add_argument("--pool", type=int, default=8)
    p.add_argument("--test", type=int, default=4)
    p.add_argument("--probe", action="store_true")
    p.add_argument("--table", action="store_true", help="print the runs under OUT as a markdown table")
    args = p.parse_args()
    out = Path(args.out)
    if args.table:
        table(out)
        return
    items = data(out / "phantoms", args.pool + args.test)
    pool, test = items[: args.pool], items[args.pool:]
    base, spec = load_model("default")
    organs = {**{o: PHANTOM_LABELS[o] for o in args.organ}, "liver": PHANTOM_LABELS["liver"]}  # novel + a base one
    organ = "+".join(args.organ)
    rank = {"rank": args.rank}
    tag = "" if args.rank == 16 else f"-r{args.rank}"  # the first runs' file names had no rank
    if args.probe:
        probe(base, spec, organs, draw_support(pool, args.shots, args.seeds[0]))
        return
    for seed in args.seeds:
        support = draw_support(pool, args.shots, seed)
        for variant in args.variants:
            path = out / f"{organ}-k{args.shots}-e{args.epochs}{tag}-{variant}-s{seed}.json"
            if path.is_file():
                continue
            config = FinetuneConfig(**VARIANTS[variant], **rank, epochs=args.epochs, seed=seed, device="cpu")
            model = copy.deepcopy(base)
            result = finetune(model, spec, organs, support, None, config)
            label_map = {file_id: i + 1 for i, file_id in enumerate(organs.values())}
            dice = evaluate(result.model, spec.preprocessing, test, label_map, list(organs), torch.device("cpu"))
            record = {"variant": variant, "options": VARIANTS[variant], "organ": organ, **rank, "k": args.shots,
                      "seed": seed, "epochs": args.epochs, "support": [s["id"] for s in support],
                      "test": [t["id"] for t in test], "dice": {k: round(float(v), 4) for k, v in dice.items()},
                      "params_start": result.params_start, "params_end": result.params_end,
                      "ranks": result.ranks, "train_seconds": round(result.seconds, 1),
                      "threads": torch.get_num_threads(), "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
            path.write_text(json.dumps(record, indent=1) + "\n")
            mean_rank = np.mean(list(result.ranks.values())) if result.ranks else float("nan")
            print(f"{variant} seed {seed}: Dice {record['dice']} | params {result.params_start} -> "
                  f"{result.params_end} (mean rank {mean_rank:.1f}) | {result.seconds:.0f} s", flush=True)


if __name__ == "__main__":
    main()
