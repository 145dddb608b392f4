"""Does the initial rank set the step size? One CPU-preset cell (k shots, one seed) with LoRA at rank R and the
update scale alpha/R of another rank, scored as the preset scores it (same phantoms, support draw and settings).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/rank_scale_check.py --rank 16 --alpha 64 --k 5 --seed 0
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from arena_seg.bench import fewshot
from arena_seg.bench.protocol import CPU, MethodSpec, draw_support
from arena_seg.inference.loading import load_model
from arena_seg.training.config import FinetuneConfig


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rank", type=int, required=True)
    p.add_argument("--alpha", type=float, required=True, help="scale = alpha / rank (the preset's: alpha = rank)")
    p.add_argument("--method", default="lora", choices=["lora", "arena"])
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/fewshot-cpu/scale-check")
    args = p.parse_args()
    data = fewshot.phantom_data(Path("benchmarks/fewshot-cpu/phantoms"), CPU)
    base, spec = load_model("default")
    alpha = args.alpha

    class Scaled(FinetuneConfig):  # the preset's config with another alpha, nothing else changed
        def __init__(self, *a, **kw):
            super().__init__(*a, alpha=alpha, **kw)

    fewshot.FinetuneConfig = Scaled
    record = fewshot.run_one(base, spec, data, draw_support(data.pool, args.k, args.seed),
                             MethodSpec(args.method, args.rank), args.seed, CPU, torch.device("cpu"))
    record["alpha"] = alpha
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"{args.method}-r{args.rank}-alpha{alpha:g}-k{args.k}-s{args.seed}.json"
    (out / name).write_text(json.dumps(record, indent=1) + "\n")
    print(name, record["dice"], record["arena"] and record["arena"].get("alpha"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
