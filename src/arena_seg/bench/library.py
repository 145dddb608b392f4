"""Serving cost of an organ library: latency and peak memory of one infer with 1, 3, 10 learned organs.

Two ways to serve N versions: keep every version's merged network loaded (``merged``: memory grows with N, each
request pays N forward passes), or keep one loaded and reload the next when its turn comes (``switching``: memory
of one extra network, each request also pays N loads). Each (N, strategy) runs in a fresh process, two requests
in a row (the first loads, the second is what a running server pays); peak is the process's max RSS. CPU seconds
are given beside wall seconds: on a shared machine they are the steadier figure.

    python -m arena_seg.bench.library --adapters 1 3 10 --out benchmarks/library
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STRATEGIES = {"merged": None, "switching": 1}


def make_library(root: Path, network: str, n: int) -> Path:
    """A library of ``n`` versions, each a copy of ``network`` with a fresh 2-class head for one organ (weights do
    not change what serving costs)."""
    from arena_seg.inference.loading import load_model
    from arena_seg.models.registry import build_network, save_network

    _, spec = load_model(network)
    arch = {"class": spec.arch["class"], "kwargs": {**spec.arch["kwargs"], "out_channels": 2}}
    for i in range(1, n + 1):
        folder = root / "versions" / f"v{i:03d}"
        save_network(build_network(arch), folder / "network", name=f"{spec.name}+organ{i}", arch=arch,
                     labels={f"organ{i}": 1}, preprocessing=spec.preprocessing, targets=spec.targets, head=spec.head)
        (folder / "manifest.json").write_text(json.dumps({"labels": {f"organ{i}": 1}, "foundation_ref": network}))
    return root


def worker(library: str, network: str, image: str, strategy: str) -> dict:
    """Two infers on ``image`` in this process; their seconds and the process's peak RSS (MB)."""
    import torch

    from arena_seg.data.volumes import read_volume
    from arena_seg.inference.loading import load_model
    from arena_seg.inference.predictor import Predictor
    from arena_seg.library import LibraryPredictor, OrganLibrary

    torch.set_num_threads(max(1, torch.get_num_threads()))
    volume = read_volume(image)
    model, spec = load_model(network)
    predictor = LibraryPredictor(Predictor(model, spec, device="cpu"), OrganLibrary(library),
                                 max_loaded=STRATEGIES[strategy])
    seconds, cpu = [], []
    for _ in range(2):
        start, start_cpu = time.perf_counter(), time.process_time()
        predictor.predict_array(volume.array, volume.affine)
        seconds.append(round(time.perf_counter() - start, 2))
        cpu.append(round(time.process_time() - start_cpu, 2))
    return {"first_s": seconds[0], "steady_s": seconds[1], "first_cpu_s": cpu[0], "steady_cpu_s": cpu[1],
            "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def run(adapters: list[int], network: str, image: str | None, out: str | None) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if image is None:
            from arena_seg.data.phantoms.writer import write_phantoms

            write_phantoms(Path(tmp) / "ph", n=1, seed=5)
            image = str(next((Path(tmp) / "ph" / "images").glob("*.nii.gz")))
        for n in adapters:
            library = make_library(Path(tmp) / f"lib{n}", network, n)
            for strategy in STRATEGIES:
                cmd = [sys.executable, "-m", "arena_seg.bench.library", "--worker", str(library), "--network",
                       network, "--image", image, "--strategy", strategy]
                done = subprocess.run(cmd, check=True, capture_output=True, text=True)
                result = json.loads(done.stdout.splitlines()[-1])
                rows.append({"adapters": n, "strategy": strategy, **result})
                print(json.dumps(rows[-1]), flush=True)
    table = ["| learned organs | strategy | first request s (CPU s) | steady request s (CPU s) | peak RSS MB |",
             "|---|---|---|---|---|"]
    table += [f"| {r['adapters']} | {r['strategy']} | {r['first_s']} ({r['first_cpu_s']}) | {r['steady_s']} "
              f"({r['steady_cpu_s']}) | {r['peak_mb']} |" for r in rows]
    print("\n".join(table))
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        command = f"python -m arena_seg.bench.library --adapters {' '.join(map(str, adapters))} --network {network}" + (
            f" --image {image}" if image else "")
        Path(out, "library.json").write_text(json.dumps({"command": command, "rows": rows}, indent=2) + "\n")
        Path(out, "library.md").write_text(f"`{command}`\n\n" + "\n".join(table) + "\n")
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--adapters", nargs="+", type=int, default=[1, 3, 10])
    p.add_argument("--network", default="default")
    p.add_argument("--image", default=None, help="a CT to segment (default: a generated phantom)")
    p.add_argument("--out", default=None)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--strategy", default="merged", choices=list(STRATEGIES), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.network, args.image, args.strategy)))
        return 0
    run(args.adapters, args.network, args.image, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
