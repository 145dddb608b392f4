"""Few-shot quality benchmark: every method on the engine's one code path, k shots × seeds, Dice on held-out data.

Each (k, seed) draws one support set from the pool; every method fine-tunes a fresh copy of the foundation network
on it (all organs together) and is scored on the same held-out test volumes. Each run's record is written to its own
file (``runs/METHOD-kK-sSEED.json``) and ``results.json`` is rewritten after every run, so an interrupted benchmark
keeps what it finished; with ``resume``, runs whose file exists (made with the same settings) are not run again.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from arena_seg.errors import InputError
from arena_seg.models.registry import FoundationSpec
from arena_seg.training.config import FinetuneConfig
from arena_seg.training.engine import finetune, pick_device
from arena_seg.training.evaluate import evaluate

from .peers import PeerMethod, UnsupportedLayersError, peft_available, peft_version
from .protocol import MethodSpec, Preset, draw_support, organ_groups
from .tracking import GateRecorder, MemoryPeak


@dataclass
class FewshotData:
    """Support pool and test volumes ({"image", "label", "id"}), and the organs to learn {name: id in labels}."""

    pool: list[dict]
    test: list[dict]
    organs: dict[str, int]
    source: str


def phantom_data(folder: Path, preset: Preset, seed: int = 0) -> FewshotData:
    """Phantoms for ``preset`` in ``folder`` (written once: pool + test volumes at the preset's spacing)."""
    from arena_seg.data.phantoms import PHANTOM_LABELS, write_phantoms

    unknown = [o for o in preset.organs if o not in PHANTOM_LABELS]
    if unknown:
        raise InputError(f"--organs {', '.join(unknown)}: phantoms have {', '.join(PHANTOM_LABELS)}")
    n = preset.pool + preset.test
    stamp = {"n": n, "seed": seed, "spacing": preset.spacing}
    marker = folder / "bench-phantoms.json"
    if not (marker.is_file() and json.loads(marker.read_text()) == stamp):
        write_phantoms(folder, n=n, seed=seed, spacing=(preset.spacing,) * 3)
        marker.write_text(json.dumps(stamp) + "\n")
    items = [{"image": str(folder / "images" / f"phantom_{i:03d}.nii.gz"),
              "label": str(folder / "labels" / f"phantom_{i:03d}.nii.gz"), "id": f"phantom_{i:03d}"} for i in range(n)]
    organs = {o: PHANTOM_LABELS[o] for o in preset.organs}
    return FewshotData(items[: preset.pool], items[preset.pool :], organs, f"phantoms ({preset.spacing:g} mm)")


def user_data(images: list[str], labels: list[str], label_specs: list[str], n_test: int) -> FewshotData:
    """A user's labelled volumes: the last ``n_test`` (by name) are held out, the rest form the pool."""
    from arena_seg.commands.common import pair_volumes, parse_organs

    organs = parse_organs(label_specs, labels)
    pairs = sorted(pair_volumes(images, labels), key=lambda p: p["id"])
    if not 1 <= n_test < len(pairs):
        raise InputError(f"--test {n_test}: hold out at least 1 of the {len(pairs)} volumes and keep 1 for training")
    return FewshotData(pairs[:-n_test], pairs[-n_test:], organs, f"{len(pairs)} volumes from {images[0]}")


def run_config(method: MethodSpec, k: int, seed: int, preset: Preset, device: str) -> FinetuneConfig:
    """The fine-tuning settings of one run: the preset's, and ``ArenaConfig``'s defaults for everything else."""
    return FinetuneConfig(method="lora" if method.is_peer else method.method, rank=method.rank or 16,
                          lam=preset.lam, lr=preset.lr, epochs=preset.epochs_for(k),
                          num_samples=preset.num_samples, seed=seed, device=device)


def arena_settings(method: MethodSpec, config: FinetuneConfig) -> dict | None:
    """What a run record keeps of ARENA's options (None for every other method)."""
    return config.arena.to_dict() if method.method == "arena" else None


def run_one(base: nn.Module, spec: FoundationSpec, data: FewshotData, support: list[dict], method: MethodSpec,
            seed: int, preset: Preset, device: torch.device, trace: bool = False) -> dict:
    """Fine-tune a copy of ``base`` with ``method`` on ``support``, score it on ``data.test``; one record."""
    model = copy.deepcopy(base)
    config = run_config(method, len(support), seed, preset, str(device))
    recorder = GateRecorder(model, full=trace)
    peer = (PeerMethod(method.method, method.rank or 16, total_steps=config.epochs * len(support))
            if method.is_peer else None)
    with MemoryPeak(device) as memory:
        result = finetune(model, spec, data.organs, support, None, config, progress=recorder, method=peer)
    ranks, params_end = result.ranks, result.params_end
    if peer is not None:
        ranks, params_end = peer.effective_ranks(model), peer.effective_parameters(model, result.params_end)
    names = list(data.organs)
    label_map = {file_id: i + 1 for i, file_id in enumerate(data.organs.values())}
    t0 = time.perf_counter()
    dice = evaluate(result.model, spec.preprocessing, data.test, label_map, names, device,
                    amp=config.amp and device.type == "cuda")
    record = {
        "method": method.label, "family": method.method, "rank": method.rank, "k": len(support), "seed": seed,
        "support": [s.get("id", Path(s["image"]).name) for s in support],
        "dice": {k: _round(v) for k, v in dice.items()},
        "params_start": result.params_start, "params_end": params_end,
        "effective_ranks": ranks, "mean_effective_rank": _round(np.mean(list(ranks.values()))) if ranks else None,
        "arena": arena_settings(method, config),
        "train_seconds": round(result.seconds, 2), "eval_seconds": round(time.perf_counter() - t0, 2),
        "peak_memory_mb": _round(memory.mb, 1), "memory_measure": memory.kind, "epochs_run": result.epochs_run,
        **recorder.to_dict(),
    }
    del model, result
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return record


def _round(x: float, digits: int = 4) -> float | None:
    x = float(x)
    return round(x, digits) if np.isfinite(x) else None


def host_info(device: torch.device) -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__, "device": str(device),
            "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "threads": torch.get_num_threads(), "peft": peft_version()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def run_key(preset: Preset, data: FewshotData, base: nn.Module | None = None) -> dict:
    """What a stored run must share with this benchmark to be reused: everything but the methods, k and seeds,
    and the foundation network's weights (a run on another version of the embedded network is not reused)."""
    keep = {k: v for k, v in asdict(preset).items() if k not in ("name", "methods", "shots", "seeds")}
    key = {**keep, "data": data.source, "test": [t.get("id", t["image"]) for t in data.test]}
    if base is not None:
        from arena_seg.adapters.io import base_weights_sha256

        key["foundation_sha256"] = base_weights_sha256(base)
    return json.loads(json.dumps(key))  # as a stored file reads back (tuples become lists)


def _stored(path: Path, key: dict, arena: dict | None) -> dict | None:
    """The run stored at ``path`` if it was made with ``key`` and, for ARENA, with the ``arena`` options of today's
    defaults (a run from before a default changed is made again)."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if record.get("key") != key or (arena is not None and record.get("arena") != arena):
        return None
    return record


def run_fewshot(out: Path, base: nn.Module, spec: FoundationSpec, data: FewshotData, preset: Preset,
                methods: list[MethodSpec], device: str = "auto", log: Callable[[str], None] = print,
                budget_s: float | None = None, resume: bool = False, shard: tuple[int, int] | None = None) -> dict:
    """Run the benchmark, writing each run to ``out/runs/`` and ``results.json`` as it goes, the markdown table and
    plots at the end.

    With ``budget_s``, no new run starts once that many seconds have passed; the report covers the runs done. With
    ``resume``, a run whose file is already in ``out/runs/`` (same settings) is read, not run again. With
    ``shard=(i, n)`` only every n-th run from the i-th is made and only its run files are written (see
    :func:`run_parallel`, whose last pass writes the report).
    """
    from .plots import fewshot_plots
    from .report import fewshot_markdown, write_json

    dev = pick_device(device)
    skipped = []
    if not peft_available() and any(m.is_peer for m in methods):
        skipped = [m.label for m in methods if m.is_peer]
        log(f"peft is not installed: skipping {', '.join(skipped)} (pip install -r requirements-bench.txt)")
        methods = [m for m in methods if not m.is_peer]
    shots = [k for k in preset.shots if k <= len(data.pool)]
    for k in sorted(set(preset.shots) - set(shots)):
        log(f"skipping k={k}: the pool holds only {len(data.pool)} volumes")
        skipped.append(f"k={k}")
    if not shots or not methods:
        raise InputError("nothing to run: no method, or no k the training pool can supply")
    arena = [m for m in methods if m.method == "arena"]
    trace = (max(arena, key=lambda m: m.rank or 0), max(shots), preset.seeds[0]) if arena else None

    results = {"benchmark": "fewshot", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "preset": asdict(preset),
               "model": spec.name, "data": data.source, "organs": organ_groups(list(data.organs), spec.labels),
               "test": [t.get("id", t["image"]) for t in data.test], "methods": [m.label for m in methods],
               "skipped": skipped, "trace_run": None, "host": host_info(dev), "runs": []}
    if trace:
        results["trace_run"] = {"method": trace[0].label, "k": trace[1], "seed": trace[2]}
    out.mkdir(parents=True, exist_ok=True)
    (out / "runs").mkdir(exist_ok=True)
    key = run_key(preset, data, base)
    plan = [(k, seed, method) for k in shots for seed in preset.seeds for method in methods]
    if shard is not None:
        plan = plan[shard[0]::shard[1]]
    start = time.perf_counter()
    for i, (k, seed, method) in enumerate(plan):
        if method.label in results["skipped"]:
            continue
        path = out / "runs" / f"{method.label}-k{k}-s{seed}.json"
        arena = arena_settings(method, run_config(method, k, seed, preset, str(dev)))
        record = _stored(path, key, arena) if resume else None
        if record is not None:
            results["runs"].append(record)
            log(f"[{i + 1}/{len(plan)}] {method.label} k={k} seed={seed}: kept from {path}")
            continue
        if budget_s is not None and time.perf_counter() - start > budget_s:
            done = len(results["runs"])
            results["stopped"] = f"time budget of {budget_s:.0f} s reached with {done} of {len(plan)} runs done"
            break
        support = draw_support(data.pool, k, seed)
        try:
            record = run_one(base, spec, data, support, method, seed, preset, dev,
                             trace=(method, k, seed) == trace)
        except UnsupportedLayersError as exc:
            log(f"skipping {method.label}: {exc}")
            results["skipped"].append(method.label)
            continue
        record["key"] = key
        write_json(path, record)
        results["runs"].append(record)
        if shard is None:
            write_json(out / "results.json", results)
        dice = " ".join(f"{o} {d:.3f}" if d is not None else f"{o} n/a" for o, d in record["dice"].items())
        log(f"[{i + 1}/{len(plan)}] {method.label} k={k} seed={seed}: Dice {dice} | trainable "
            f"{record['params_start']} -> {record['params_end']} | {record['train_seconds']:.0f} s train, "
            f"{record['eval_seconds']:.0f} s test | {time.perf_counter() - start:.0f} s so far")
    if "stopped" in results:
        log(results["stopped"])
    if not results["runs"]:
        raise InputError("the time budget ran out before the first run finished")
    results["seconds"] = round(time.perf_counter() - start, 1)
    if shard is not None:
        return results
    write_json(out / "results.json", results)
    (out / "results.md").write_text(fewshot_markdown(results))
    fewshot_plots(results, out)
    return results


def _shard_worker(out: Path, model_ref: str, checkpoint: str | None, data: FewshotData, preset: Preset,
                  methods: list[MethodSpec], device: str, budget_s: float | None, shard: tuple[int, int],
                  threads: int) -> None:
    """One process of :func:`run_parallel`: its own copy of the network, its share of the runs."""
    from arena_seg.inference.loading import load_model

    torch.set_num_threads(threads)
    base, spec = load_model(model_ref, checkpoint)
    prefix = f"[worker {shard[0] + 1}/{shard[1]}] "
    run_fewshot(out, base, spec, data, preset, methods, device=device, budget_s=budget_s, resume=True,
                shard=shard, log=lambda line: print(prefix + line, flush=True))


def run_parallel(out: Path, model_ref: str, checkpoint: str | None, data: FewshotData, preset: Preset,
                 methods: list[MethodSpec], jobs: int, device: str = "cpu", log: Callable[[str], None] = print,
                 budget_s: float | None = None, resume: bool = False) -> dict:
    """The benchmark in ``jobs`` processes of ``cpu_count // jobs`` threads each, each making every ``jobs``-th
    run; then a last pass in this process reads their run files back and writes the report. Stopped, it resumes
    run by run."""
    import multiprocessing

    from arena_seg.inference.loading import load_model

    if not resume:  # a fresh benchmark: runs left by an earlier one in OUT are not reused
        for path in (out / "runs").glob("*.json"):
            path.unlink()
    threads = max(1, (os.cpu_count() or 1) // jobs)
    ctx = multiprocessing.get_context("spawn")  # no forked torch thread pools
    workers = [ctx.Process(target=_shard_worker, name=f"fewshot-{i}",
                           args=(out, model_ref, checkpoint, data, preset, methods, device, budget_s, (i, jobs),
                                 threads)) for i in range(jobs)]
    log(f"{jobs} worker processes, {threads} thread(s) each")
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    failed = [f"{w.name} (exit {w.exitcode})" for w in workers if w.exitcode != 0]
    if failed:
        raise InputError(f"worker {', '.join(failed)} stopped; the runs the workers finished are kept in "
                         f"{out / 'runs'}: run the same command with --resume")
    base, spec = load_model(model_ref, checkpoint)
    # budget 0: this pass only reads the workers' runs back (any left undone by their budget stay undone)
    return run_fewshot(out, base, spec, data, preset, methods, device=device, log=log, resume=True, budget_s=0)
