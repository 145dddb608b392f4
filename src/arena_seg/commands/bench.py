"""`arena-seg bench`: few-shot quality (`fewshot`) and cost (`speed`) benchmarks of ARENA against its peers, and
the inference memory benchmark (`memory`)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from arena_seg.errors import InputError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks: few-shot Dice per method, and training/inference cost",
                       description=__doc__)
    bench_sub = p.add_subparsers(dest="bench_command", required=True, metavar="BENCHMARK")
    _add_fewshot(bench_sub)
    _add_speed(bench_sub)
    _add_memory(bench_sub)


def _add_fewshot(sub: argparse._SubParsersAction) -> None:
    from arena_seg.bench.protocol import CPU, FULL, QUICK

    p = sub.add_parser("fewshot", help="few-shot Dice of ARENA, LoRA, full, linear, BitFit and peft peers",
                       description="Fine-tune every method on k-shot support sets (one per seed) and score Dice per "
                                   "organ on held-out volumes; writes results.json, results.md and PNG plots. "
                                   f"Full preset: k {FULL.shots}, seeds {FULL.seeds}, {FULL.epochs} epochs, methods "
                                   f"{' '.join(FULL.methods)} (a GPU job). --quick: k {QUICK.shots}, seed "
                                   f"{QUICK.seeds}, {QUICK.epochs} epochs, {' '.join(QUICK.methods)}, organs "
                                   f"{', '.join(QUICK.organs)} (about 10-11 min on an idle 2-core CPU). --preset cpu: "
                                   f"k {CPU.shots}, seeds {CPU.seeds}, {CPU.steps} steps a run, "
                                   f"{' '.join(CPU.methods)}, organs {', '.join(CPU.organs)} (about 2.6 h on 2 cores "
                                   "with --jobs 2; stop it any time and pick it up with --resume).")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--force", action="store_true", help="overwrite results already in --out")
    p.add_argument("--preset", choices=("quick", "cpu", "full"), default=None,
                   help="quick (a smoke test), cpu (issue 14's comparison) or full (a GPU job; the default)")
    p.add_argument("--quick", action="store_true", help="same as --preset quick")
    p.add_argument("--resume", action="store_true",
                   help="keep the runs already in OUT/runs (same settings) and do the rest")
    p.add_argument("--model", default="default", help="foundation network or model folder (default: default)")
    p.add_argument("--checkpoint", default=None, help="weights for fseft-swinunetr / monai-wholebody")
    p.add_argument("--images", nargs="+", help="your CT volumes (or a folder) instead of phantoms")
    p.add_argument("--labels", nargs="+", help="their label maps (or a folder)")
    p.add_argument("--label", action="append", metavar="NAME[=ID]", help="organ to learn (repeat), as in finetune")
    p.add_argument("--test", type=int, default=None, help="held-out test volumes (default: the preset's)")
    p.add_argument("--data", default=None, help="phantom folder (default OUT/phantoms; reused when it matches)")
    p.add_argument("--organs", nargs="+", default=None, help="phantom organs to learn (default: the preset's)")
    p.add_argument("--pool", type=int, default=None, help="phantom volumes support sets are drawn from")
    p.add_argument("--spacing", type=float, default=None, help="phantom voxel size in mm")
    p.add_argument("--shots", type=int, nargs="+", default=None, help="k values, e.g. 1 5 10")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds; each draws its own support set")
    p.add_argument("--methods", nargs="+", default=None,
                   help="e.g. arena:8,16,32,64 lora:4,16,64 full linear bitfit peft-lora:16 peft-adalora:16")
    p.add_argument("--epochs", type=int, default=None, help="epochs a run (replaces the cpu preset's steps)")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps a run whatever k (epochs = ⌈steps/k⌉)")
    p.add_argument("--num-samples", type=int, default=None, help="patches per support volume per epoch")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--lam", type=float, default=None, help="ARENA's l1 weight on the gates")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                   help="start no new run after this long; report the runs done")
    p.add_argument("--jobs", type=int, default=1,
                   help="runs at once, each in its own process with (CPU cores / JOBS) threads (default 1); "
                        "stopped, it resumes with --resume")
    p.set_defaults(func=run_fewshot)


def _add_speed(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("speed", help="step time, peak memory and latency ratios (ARENA vs LoRA vs full)",
                       description="Training step time and peak memory of ARENA vs LoRA (same rank) vs full "
                                   "fine-tuning, latency of the merged and unmerged ARENA network vs the base network, "
                                   "sliding-window volumes per minute; random weights; writes speed.json/md/png.")
    p.add_argument("--out", default=None, help="output folder (default: print only)")
    p.add_argument("--nets", nargs="+", default=["default", "swinunetr48"],
                   help="default, swinunetr48, a registry name or a network folder (default: default swinunetr48)")
    p.add_argument("--size", nargs="+", default=[], metavar="[NET=]N|DxHxW",
                   help="input size (SwinUNETR: sides multiples of 32, one ≥ 64); default 64³ for default, "
                        "96³ (GPU) or 32x32x64 (CPU) for swinunetr48")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--rank", type=int, default=16, help="rank of ARENA and LoRA (default 16)")
    p.add_argument("--reps", type=int, default=None, help="timed repetitions (default 5 on CPU, 20 on GPU)")
    p.add_argument("--warmup", type=int, default=None, help="untimed repetitions first (default 1 CPU, 3 GPU)")
    p.add_argument("--sw-reps", type=int, default=None, help="sliding-window repetitions (default 2 CPU, 3 GPU)")
    p.add_argument("--volume", type=int, nargs=3, default=None, metavar=("D", "H", "W"),
                   help="sliding-window volume (default 1.5 × the input size per side)")
    p.add_argument("--device", default="auto")
    p.add_argument("--jobs", type=int, default=1, help="memory processes at once on CPU (default 1)")
    p.add_argument("--train", nargs="+", default=None, choices=["full", "lora", "arena", "peft-lora"],
                   help="training configs to compare (default: all; arena always runs)")
    p.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory processes")
    p.add_argument("--no-peft", action="store_true", help="skip the peft LoRA reference")
    p.set_defaults(func=run_speed)


def _add_memory(sub: argparse._SubParsersAction) -> None:
    from arena_seg.bench.memory import SIZES

    p = sub.add_parser("memory", help="time and peak memory of predicting clinical-size CT, before and after",
                       description="Makes clinical-size CT (a phantom, or --source, resampled to each size), then "
                                   "predicts it in a fresh process per model and pipeline (before: the former MONAI "
                                   "pipeline; after: the bounded-memory predictor); prints time and peak RSS.")
    p.add_argument("--out", default=None, help="folder for memory.json and memory.md (default: print only)")
    p.add_argument("--models", nargs="+", default=["default", "monai-wholebody"],
                   help="models (monai-wholebody and fseft-swinunetr get random weights without --checkpoint)")
    p.add_argument("--sizes", nargs="+", default=["512x512x400"], metavar="XxYxZ",
                   help=f"scan shapes (default 512x512x400; e.g. {' '.join(SIZES)})")
    p.add_argument("--pipelines", nargs="+", default=["before", "after"], choices=["before", "after"])
    p.add_argument("--rows", nargs="+", default=["predict", "train"], choices=["predict", "train"],
                   help="prediction rows and/or training rows (a CacheDataset of --train-scans scans, as finetune "
                        "loads them)")
    p.add_argument("--train-models", nargs="+", default=["default"], help="models whose grid the training rows use")
    p.add_argument("--train-scans", type=int, default=3, help="scans in the training rows' CacheDataset (default 3)")
    p.add_argument("--source", default=None, help="a CT whose field of view is resampled (default: a phantom)")
    p.add_argument("--source-label", default=None, help="the --source CT's label map (for the training rows)")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch threads per measurement")
    p.add_argument("--sw-batch-size", type=int, default=None,
                   help="windows per network call (default: before 2, after the predictor's own)")
    p.add_argument("--keep", default=None, help="folder to keep the generated scans in (reused when present)")
    p.set_defaults(func=run_memory)


def run_memory(args: argparse.Namespace) -> int:
    from arena_seg.bench import memory

    for size in args.sizes:
        parts = size.lower().split("x")
        if len(parts) != 3 or not all(v.isdigit() and int(v) > 1 for v in parts):
            raise InputError(f"--sizes {size!r}: give XxYxZ, e.g. 512x512x400")
    if args.train_scans < 0:
        raise InputError(f"--train-scans {args.train_scans}: give 0 (no training rows) or more")
    opts = memory.MemoryOptions(models=list(args.models), sizes=list(args.sizes), pipelines=list(args.pipelines),
                                rows=list(args.rows), train_models=list(args.train_models),
                                train_scans=args.train_scans, device=args.device, threads=args.threads,
                                sw_batch_size=args.sw_batch_size, checkpoint=args.checkpoint, keep=args.keep,
                                source=args.source, source_label=args.source_label)
    memory.run_memory(Path(args.out) if args.out else None, opts)
    return 0


def run_fewshot(args: argparse.Namespace) -> int:
    from arena_seg.bench import fewshot
    from arena_seg.bench.protocol import PRESETS, parse_methods
    from arena_seg.inference.loading import load_model

    out = Path(args.out)
    if args.jobs < 1:
        raise InputError(f"--jobs {args.jobs}: give 1 or more")
    if (out / "results.json").exists() and not (args.force or args.resume):
        raise InputError(f"{out} already holds results.json; choose a new folder, --resume it or pass --force")
    if args.quick and args.preset not in (None, "quick"):
        raise InputError(f"--quick and --preset {args.preset} disagree; give one")
    preset = PRESETS[args.preset or ("quick" if args.quick else "full")].with_overrides(
        shots=tuple(args.shots) if args.shots else None, seeds=tuple(args.seeds) if args.seeds else None,
        organs=tuple(args.organs) if args.organs else None, methods=tuple(args.methods) if args.methods else None,
        epochs=args.epochs, num_samples=args.num_samples, lr=args.lr, lam=args.lam, pool=args.pool,
        spacing=args.spacing, test=args.test, steps=args.steps)
    if args.epochs is not None and args.steps is None:
        preset = dataclasses.replace(preset, steps=None)  # epochs given: they count, not the preset's steps
    methods = parse_methods(list(preset.methods))
    if min(preset.shots) < 1 or min(preset.epochs, preset.num_samples, preset.steps or 1) < 1 or preset.steps == 0:
        raise InputError("--shots, --epochs, --steps and --num-samples must be ≥ 1")
    if bool(args.images) != bool(args.labels) or (args.images and not args.label):
        raise InputError("give --images, --labels and at least one --label together (or none, for phantoms)")
    if args.images:
        data = fewshot.user_data(args.images, args.labels, args.label, preset.test)
    else:
        if preset.pool < 1 or preset.test < 1:
            raise InputError("--pool and --test must be ≥ 1")
        data = fewshot.phantom_data(Path(args.data) if args.data else out / "phantoms", preset)
    if args.jobs > 1:
        results = fewshot.run_parallel(out, args.model, args.checkpoint, data, preset, methods, args.jobs,
                                       device=args.device, budget_s=args.budget, resume=args.resume)
    else:
        model, spec = load_model(args.model, args.checkpoint)
        results = fewshot.run_fewshot(out, model, spec, data, preset, methods, device=args.device,
                                      budget_s=args.budget, resume=args.resume)
    print(f"wrote {out}/results.json, results.md and plots: {len(results['runs'])} runs in {results['seconds']:.0f} s")
    return 0


def run_speed(args: argparse.Namespace) -> int:
    from arena_seg.bench import speed

    sizes: dict[str, tuple[int, int, int]] = {}
    for item in args.size:
        name, sep, value = item.rpartition("=")
        try:
            shape = tuple(int(v) for v in value.lower().split("x"))
        except ValueError:
            raise InputError(f"--size {item!r}: give N, DxHxW, NET=N or NET=DxHxW") from None
        shape = shape * 3 if len(shape) == 1 else shape
        if len(shape) != 3 or min(shape) < 1:
            raise InputError(f"--size {item!r}: give N, DxHxW, NET=N or NET=DxHxW with positive sides")
        for net in [name] if sep else args.nets:
            sizes[net] = shape
    if min(args.batch, args.rank) < 1 or (args.reps is not None and args.reps < 1):
        raise InputError("--batch, --rank and --reps must be ≥ 1")
    opts = speed.SpeedOptions(nets=list(args.nets), sizes=sizes, batch=args.batch, rank=args.rank, reps=args.reps,
                        warmup=args.warmup, sw_reps=args.sw_reps, volume=tuple(args.volume) if args.volume else None,
                        device=args.device, amp=not args.no_amp, memory=not args.no_memory, peft=not args.no_peft,
                        jobs=args.jobs, **({"train": tuple(args.train)} if args.train else {}))
    speed.run_speed(Path(args.out) if args.out else None, opts)
    return 0
