"""`arena-seg pretrain`: train a foundation network from labelled volumes (how the embedded default was made)."""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import replace

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
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from arena_seg.commands.common import pair_volumes, parse_organs, staged_output
    from arena_seg.commands.finetune import ProgressBar
    from arena_seg.data.volumes import check_label, read_volume
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

    base = get_spec(args.arch)
    arch = json.loads(json.dumps(base.arch))
    arch["kwargs"]["out_channels"] = len(organs) + 1
    spec = replace(base, labels={name: i + 1 for i, name in enumerate(organs)}, arch=arch)
    model = build_network(arch)
    # "full" on a freshly built network is plain supervised training; the head keeps its random init
    config = FinetuneConfig(method="full", epochs=args.epochs, lr=args.lr, num_samples=args.num_samples,
                            val_every=args.val_every, patience=10**6, seed=args.seed, device=args.device,
                            warmup_epochs=max(1, args.epochs // 50))
    with staged_output(args.out, force=args.force) as stage:
        bar = ProgressBar(config.epochs)
        result = finetune(model, replace(spec, labels={}), organs, train, val, config, progress=bar.update_from)
        bar.close()
        card = {"train_ids": [p["id"] for p in train], "val_ids": [p["id"] for p in val],
                "epochs": result.epochs_run, "seconds": round(result.seconds), "val_dice": _last_dice(result)}
        save_network(result.model.cpu(), stage, name=args.arch, arch=arch, labels=spec.labels,
                     preprocessing=spec.preprocessing, targets=spec.targets, head=spec.head,
                     metadata={"pretrain": card, "history": result.history})
    print(f"wrote {args.out}; held-out Dice: " + ", ".join(f"{k} {v:.3f}" for k, v in card["val_dice"].items()))
    return 0


def _last_dice(result) -> dict[str, float]:
    for record in reversed(result.history):
        if "val_dice" in record:
            return record["val_dice"]
    return {}
