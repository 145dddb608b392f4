"""`arena-seg pretrain`: train a foundation network from labelled volumes (how the embedded default was made)."""

from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import replace
from pathlib import Path

from arena_seg.errors import InputError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pretrain", help="train a foundation network from scratch", description=__doc__)
    p.add_argument("--images", nargs="+", required=True, help="CT volumes, or a folder of them")
    p.add_argument("--labels", nargs="+", required=True, help="label maps, or a folder of them")
    p.add_argument("--label", action="append", required=True, metavar="NAME[=ID]", help="organs to learn")
    p.add_argument("--arch", default="default", help="registry entry whose architecture to train (default)")
    p.add_argument("--out", required=True, help="output network folder")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--num-samples", type=int, default=4)
    p.add_argument("--val", type=int, default=2, help="held-out volumes for validation and the model card")
    p.add_argument("--val-every", type=int, default=10)
    p.add_argument("--sampler", choices=("classes", "posneg"), default="classes",
                   help="patch centres: an equal share per organ (classes, default) or organ:background 1:1")
    p.add_argument("--augment", choices=("strong", "light"), default="strong",
                   help="patch augmentation: rotation/scale, contrast, blur, noise (strong, default) or a shift")
    p.add_argument("--init", metavar="DIR",
                   help="continue from this network folder (its architecture and preprocessing; same organs)")
    p.add_argument("--time-limit", type=float, metavar="MIN",
                   help="stop after this many minutes of training and keep the best validated network")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from arena_seg.commands.finetune import ProgressBar
    from arena_seg.data.pairing import pair_volumes, parse_organs
    from arena_seg.data.volumes import check_label, read_volume
    from arena_seg.files import staged_output
    from arena_seg.models.registry import build_network, get_spec, save_network
    from arena_seg.training.config import FinetuneConfig
    from arena_seg.training.engine import finetune

    organs = parse_organs(args.label, args.labels)
    pairs = pair_volumes(args.images, args.labels)
    for pair in pairs:
        check_label(read_volume(pair["image"]), read_volume(pair["label"], "label"), list(organs.values()))
    if not 0 <= args.val < len(pairs):
        raise InputError(f"--val {args.val}: keep at least one of the {len(pairs)} volumes for training")
    order = list(range(len(pairs)))
    random.Random(args.seed).shuffle(order)
    val, train = [pairs[i] for i in order[: args.val]], [pairs[i] for i in order[args.val:]]

    if args.init:
        model, spec = _initial_network(args.init, list(organs))
        arch = spec.arch
    else:
        base = get_spec(args.arch)
        arch = json.loads(json.dumps(base.arch))
        arch["kwargs"]["out_channels"] = len(organs) + 1
        spec = replace(base, labels={name: i + 1 for i, name in enumerate(organs)}, arch=arch)
        model = build_network(arch)
    # "full" on a network is plain supervised training of every parameter
    config = FinetuneConfig(method="full", epochs=args.epochs, lr=args.lr, num_samples=args.num_samples,
                            val_every=args.val_every, patience=10**6, seed=args.seed, device=args.device,
                            warmup_epochs=max(1, args.epochs // 50), sampler=args.sampler,
                            augment=args.augment)
    deadline = time.monotonic() + 60 * args.time_limit if args.time_limit else None
    with staged_output(args.out, force=args.force) as stage:
        bar = ProgressBar(config.epochs)
        # a fresh network's head rows are random anyway; a continued one keeps its rows (same organs, same order)
        start_spec = spec if args.init else replace(spec, labels={})
        result = finetune(model, start_spec, organs, train, val, config, progress=bar.update_from,
                          should_stop=(lambda: time.monotonic() > deadline) if deadline else None)
        bar.close()
        card = {"train_ids": [p["id"] for p in train], "val_ids": [p["id"] for p in val],
                "epochs": result.epochs_run, "seconds": round(result.seconds), "val_dice": _best_dice(result),
                "sampler": args.sampler, "augment": args.augment, "init": args.init}
        save_network(result.model.cpu(), stage, name=args.arch, arch=arch, labels=spec.labels,
                     preprocessing=spec.preprocessing, targets=spec.targets, head=spec.head,
                     metadata={"pretrain": card, "history": result.history})
    print(f"wrote {args.out}; held-out Dice: " + ", ".join(f"{k} {v:.3f}" for k, v in card["val_dice"].items()))
    return 0


def _best_dice(result) -> dict[str, float]:
    """Per-organ Dice of the validation the engine kept (the best mean), which is the network saved."""
    scored = [r for r in result.history if "val_dice" in r]
    return max(scored, key=lambda r: r["val_mean_dice"])["val_dice"] if scored else {}


def _initial_network(path: str, organs: list[str]):
    """A saved network to continue from: its architecture and preprocessing, and the same organs in order."""
    from arena_seg.models.registry import load_network

    model, spec = load_network(Path(path))
    if list(spec.labels) != organs or sorted(spec.labels.values()) != list(range(1, len(organs) + 1)):
        raise InputError(f"--init {path}: it segments {', '.join(spec.labels)}; give the same --label options "
                         "in that order, or train from scratch without --init")
    return model, spec
