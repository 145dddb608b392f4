"""Batch-inference throughput: series per minute, and the share of time spent outside the network.

``python -m arena_seg.bench.batch --n 20`` writes N phantom CT series as DICOM (not timed), runs the batch runner
over them (NIfTI + DICOM SEG) and prints series per minute with the time split into network forward, reading,
pre/post-processing (resampling to the network grid and back, sliding-window stitching, argmax), writing and the
rest (finding the series, start-up). Without the embedded default model it times the default architecture with
random weights, which costs the same; the printed header says which.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path


def _predictor(model: str, device: str):
    import torch

    from arena_seg.inference.loading import load_model
    from arena_seg.inference.predictor import Predictor
    from arena_seg.models.registry import DEFAULT_SPEC, build_network, default_model_dir

    if model == "default" and not (default_model_dir() / "network.json").is_file():
        torch.manual_seed(0)
        net = build_network(DEFAULT_SPEC.arch).eval()
        what = "default architecture, random weights (sample-data/default is missing; same cost as the real model)"
        return Predictor(net, DEFAULT_SPEC, device=device), what
    net, spec = load_model(model)
    return Predictor(net, spec, device=device), f"{model} ({spec.name})"


def summarize(report: dict) -> dict[str, float]:
    """Seconds per part summed over the series done, and the run's wall time."""
    done = [e["timings"] for e in report["series"] if e["status"] == "done"]
    parts = {k: sum(t.get(k, 0.0) for t in done) for k in ("read_s", "predict_s", "network_s", "write_s", "seg_s")}
    wall = float(report["summary"]["seconds"])
    return {"wall": wall, "network": parts["network_s"], "read": parts["read_s"],
            "prepost": parts["predict_s"] - parts["network_s"], "write": parts["write_s"], "seg": parts["seg_s"],
            "other": wall - parts["read_s"] - parts["predict_s"] - parts["write_s"], "done": len(done)}


def format_figures(fig: dict[str, float], pipelined: bool) -> list[str]:
    wall = fig["wall"]
    outside = wall - fig["network"]

    def pct(x: float) -> str:
        return f"{x:.1f} s ({100 * x / wall:.1f}%)"

    lines = [
        f"series done: {fig['done']:.0f} in {wall:.1f} s: {60 * fig['done'] / wall:.2f} series/min",
        f"network forward: {pct(fig['network'])}; outside the network (wall - network): {pct(outside)}",
        f"  pre/post-processing on the main thread (resampling both ways, window stitching, argmax): "
        f"{pct(fig['prepost'])}",
    ]
    io = (f"reading DICOM {fig['read']:.1f} s, writing {fig['write']:.1f} s (DICOM SEG {fig['seg']:.1f} s, "
          f"NIfTI + JSON {fig['write'] - fig['seg']:.1f} s)")
    if pipelined:
        lines += [f"  the rest (waiting for reads/writes, finding series): {pct(outside - fig['prepost'])}",
                  f"  in the read-ahead / write-behind threads, overlapping the network: {io}"]
    else:
        lines += [f"  {io}", f"  other (finding series, bookkeeping): {pct(fig['other'])}"]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m arena_seg.bench.batch", description=__doc__)
    parser.add_argument("--n", type=int, default=20, help="number of phantom series (default 20)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="default")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workdir", default=None, help="where phantoms and outputs go (default: a temp folder)")
    parser.add_argument("--no-pipeline", action="store_true", help="no read-ahead/write-behind threads")
    args = parser.parse_args(argv)

    import torch

    from arena_seg.data.phantoms import write_phantoms
    from arena_seg.inference.batch import BatchRunner

    work = Path(args.workdir or tempfile.mkdtemp(prefix="arena-bench-batch-"))
    t0 = time.perf_counter()
    if not (work / "data" / "dicom").is_dir() or len(list((work / "data" / "dicom").iterdir())) < args.n:
        write_phantoms(work / "data", n=args.n, seed=args.seed, dicom=True)
    made = time.perf_counter() - t0
    predictor, what = _predictor(args.model, args.device)
    runner = BatchRunner(predictor, formats=("nifti", "seg"), overwrite=True, model_ref=args.model,
                         pipeline=not args.no_pipeline)
    series = sorted((work / "data" / "dicom").iterdir())[: args.n]  # a reused workdir may hold more
    report = runner.run(series, work / ("out" if not args.no_pipeline else "out-sequential"), progress=False)
    shapes = [e["shape"] for e in report["series"] if e["status"] == "done"]
    voxels = sum(a * b * c for a, b, c in shapes) / max(1, len(shapes))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"batch inference: {args.n} phantom CT series (mean {voxels / 1e6:.1f} M voxels, made in {made:.0f} s, "
          f"not timed); model: {what}; device {predictor.device}, torch threads {torch.get_num_threads()}, "
          f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, load average at end {load:.1f}; "
          f"{'sequential' if args.no_pipeline else 'read-ahead and write-behind threads'}")
    for line in format_figures(summarize(report), pipelined=not args.no_pipeline):
        print(line)
    print(f"outputs and report.json in {report['output']}")
    return 0 if report["summary"]["failed"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
