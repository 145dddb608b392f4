"""Cost benchmark: training step time and peak memory of ARENA vs LoRA vs full fine-tuning, inference latency of
the merged and unmerged ARENA network vs the base network, and sliding-window volumes per minute.

Everything is a ratio measured in one run. Times are medians over ``reps`` repetitions, taken round-robin over
the configurations being compared (each repetition in a rotated order), so drifting machine load hits all of them
alike. Peak training memory comes from one fresh process per configuration (see ``speed_memory``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from arena_seg import adapters
from arena_seg.errors import InputError

from .costs import (
    NETWORKS,
    TRAIN_CONFIGS,
    NetworkDef,
    Trainer,
    batch,
    forward_fn,
    inference_models,
    network_def,
    no_grad_sliding_window,
    prepare,
    timed,
)
from .peers import UnsupportedLayersError, peft_available
from .speed_memory import safe_measure

MEMORY_NOTE = {
    "cuda": "torch.cuda.max_memory_allocated over two training steps, less what was allocated before the network.",
    "cpu": "peak resident set (VmHWM) of a fresh process, less its resident set before the network was built.",
}


@dataclass
class SpeedOptions:
    nets: list[str] = field(default_factory=lambda: ["default", "swinunetr48"])
    sizes: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # network -> input shape (default_size)
    batch: int = 1
    rank: int = 16
    reps: int | None = None  # None: 5 on CPU, 20 on CUDA
    warmup: int | None = None  # None: 1 on CPU, 3 on CUDA
    sw_reps: int | None = None  # None: 2 on CPU, 3 on CUDA
    volume: tuple[int, int, int] | None = None  # sliding-window volume (default 1.5 × the input size per side)
    device: str = "auto"
    amp: bool = True
    memory: bool = True
    peft: bool = True
    jobs: int = 1  # memory processes at once (CPU only)
    train: tuple[str, ...] = TRAIN_CONFIGS  # training configurations to compare (arena always runs)


def default_size(name: str, device: torch.device) -> tuple[int, int, int]:
    """64³ for the default network; SwinUNETR-48 at its 96³ patch on CUDA, 32×32×64 on a CPU.

    (SwinUNETR needs more than one voxel at its 1/32 bottleneck, so no side below 32 and not all at 32.)"""
    if NETWORKS.get(name, name) == "fseft-swinunetr":
        return (96, 96, 96) if device.type == "cuda" else (32, 32, 64)
    return (64, 64, 64)


def shape_text(shape: tuple[int, ...] | list[int]) -> str:
    return f"{shape[0]}³" if len(set(shape)) == 1 else "×".join(str(s) for s in shape)


def interleave(fns: dict[str, Callable[[], object]], reps: int, warmup: int, device: torch.device) -> dict:
    """Median seconds of each function, run round-robin (rotated order every repetition)."""
    names, times = list(fns), {n: [] for n in fns}
    for i in range(warmup + reps):
        for name in names[i % len(names):] + names[: i % len(names)]:
            t = timed(fns[name], device)
            if i >= warmup:
                times[name].append(t)
    return {n: float(np.median(v)) for n, v in times.items()}


def memory_runs(net: NetworkDef, configs: list[str], size: tuple[int, int, int], opts: SpeedOptions,
                device: torch.device) -> dict:
    """Peak memory of every training config: on CUDA one after the other in this process (allocator statistics
    count live tensors only); on CPU each in its own fresh process, forked from a forkserver that has imported
    torch and MONAI once (importing them costs far more than a few training steps), measuring what building and
    training the network adds.
    """
    import multiprocessing

    jobs = [{"network": net.to_dict(), "config": config, "rank": opts.rank, "size": list(size),
             "batch": opts.batch, "device": str(device), "amp": opts.amp and device.type == "cuda", "steps": 2,
             "threads": torch.get_num_threads()} for config in configs]
    if device.type == "cuda":
        return {job["config"]: safe_measure(job) for job in jobs}
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["arena_seg.bench.speed_memory"] + (["peft"] if "peft-lora" in configs else []))
    workers = max(1, min(opts.jobs, len(jobs)))
    with ctx.Pool(workers, maxtasksperchild=1) as pool:
        return {r["config"]: r for r in pool.map(safe_measure, jobs, chunksize=1)}


def _ratio(name: str, a: float | None, b: float | None, target: float | None = None) -> dict:
    value = a / b if a is not None and b and math.isfinite(a) and math.isfinite(b) else None
    ok = None if target is None or value is None else bool(value <= target)
    return {"name": name, "value": None if value is None else round(value, 4), "target": target, "ok": ok}


def bench_network(ref: str, opts: SpeedOptions, device: torch.device, log: Callable[[str], None]) -> dict:
    net = network_def(ref)
    size = opts.sizes.get(ref) or default_size(ref, device)
    if net.arch["class"] == "SwinUNETR" and (any(s % 32 for s in size) or max(size) < 64):
        raise InputError(f"{ref}: SwinUNETR input {shape_text(size)}: sides must be multiples of 32 and one ≥ 64 "
                         "(more than one voxel at its 1/32 bottleneck)")
    reps = opts.reps or (20 if device.type == "cuda" else 5)
    warmup = opts.warmup if opts.warmup is not None else (3 if device.type == "cuda" else 1)
    amp = opts.amp and device.type == "cuda"
    out_channels = int(net.arch["kwargs"]["out_channels"])
    log(f"{ref}: input {shape_text(size)} × {opts.batch}, rank {opts.rank}, {reps} reps on {device}")

    models = inference_models(net, opts.rank, device)
    image, label = batch(out_channels, size, opts.batch, device)
    with torch.no_grad():
        diff = float((models["merged"](image) - models["unmerged"](image)).abs().max())
    latency = interleave({n: forward_fn(m, image, amp) for n, m in models.items()}, reps, warmup, device)
    volume = opts.volume or tuple(int(math.ceil(1.5 * side / 16) * 16) for side in size)
    vol = torch.randn((1, 1, *volume), generator=torch.Generator().manual_seed(1)).to(device)
    sw_reps = opts.sw_reps or (3 if device.type == "cuda" else 2)
    sw = interleave({n: no_grad_sliding_window(m, vol, size, 2, amp) for n, m in models.items()
                     if n in ("base", "merged")}, sw_reps, 1 if device.type == "cuda" else 0, device)
    params = sum(p.numel() for p in models["base"].parameters())
    del models
    log("  inference: latency ms " + ", ".join(f"{n} {1000 * t:.1f}" for n, t in latency.items()))

    wanted = set(opts.train) | {"arena"}
    configs = [c for c in TRAIN_CONFIGS if c in wanted and (c != "peft-lora" or (opts.peft and peft_available()))]
    trainers = {}
    for c in list(configs):
        try:
            trainers[c] = Trainer(prepare(net, c, opts.rank), device, amp)
        except UnsupportedLayersError as exc:
            log(f"  skipping {c}: {exc}")
            configs.remove(c)
    steps = interleave({c: (lambda t=t: t.step(image, label)) for c, t in trainers.items()}, reps, warmup, device)
    trainable = {c: adapters.trainable_parameters(t.model) for c, t in trainers.items()}
    del trainers
    if device.type == "cuda":
        torch.cuda.empty_cache()
    log("  training step ms " + ", ".join(f"{c} {1000 * t:.1f}" for c, t in steps.items()))
    memory = memory_runs(net, configs, size, opts, device) if opts.memory else {}
    if memory:
        log("  peak memory MB " + ", ".join(f"{c} {m.get('memory_mb', m.get('error'))}" for c, m in memory.items()))

    train = {c: {"step_ms": round(1000 * steps[c], 2), "trainable": trainable[c],
                 "memory_mb": memory.get(c, {}).get("memory_mb"), "peak_mb": memory.get(c, {}).get("peak_mb"),
                 **({"memory_error": memory[c]["error"]} if "error" in memory.get(c, {}) else {})}
             for c in configs}
    inference = {n: {"latency_ms": round(1000 * t, 2),
                     "volumes_per_min": round(60.0 / sw[n], 3) if n in sw else None} for n, t in latency.items()}
    mem = {c: train[c]["memory_mb"] for c in configs}
    pairs = [("ARENA step / LoRA step", steps, "lora", 1.1), ("ARENA step / peft LoRA step", steps, "peft-lora", 1.1),
             ("ARENA step / full step", steps, "full", None), ("ARENA memory / full memory", mem, "full", 0.6),
             ("ARENA memory / LoRA memory", mem, "lora", None),
             ("ARENA memory / peft LoRA memory", mem, "peft-lora", None)]
    ratios = [_ratio(name, table["arena"], table[other], target) for name, table, other, target in pairs
              if other in table]
    ratios += [_ratio("merged latency / base", latency["merged"], latency["base"], 1.02),
               _ratio("unmerged latency / base", latency["unmerged"], latency["base"], 1.15),
               _ratio("merged sliding-window time / base", sw["merged"], sw["base"], 1.02)]
    return {"name": ref, "size": list(size), "batch": opts.batch, "rank": opts.rank, "reps": reps, "params": params,
            "sliding_window_volume": list(volume), "merge_max_abs_diff": diff, "train": train,
            "inference": inference, "ratios": ratios}


def run_speed(out: Path | None, opts: SpeedOptions, log: Callable[[str], None] = print) -> dict:
    """Measure every network in ``opts.nets``; write speed.json, speed.md and speed.png to ``out`` (if given)."""
    from arena_seg.training.engine import pick_device

    from .fewshot import host_info
    from .plots import speed_plot
    from .report import speed_markdown, write_json

    device = pick_device(opts.device)
    results = {"benchmark": "speed", "options": {**asdict(opts), "volume": opts.volume}, "host": host_info(device),
               "memory_note": MEMORY_NOTE[device.type], "networks": []}
    for ref in opts.nets:
        results["networks"].append(bench_network(ref, opts, device, log))
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            write_json(out / "speed.json", results)
    text = speed_markdown(results)
    if out is not None:
        (out / "speed.md").write_text(text)
        speed_plot(results, out / "speed.png")
    log(text)
    return results
