"""`arena-seg finetune`: adapt a foundation network to new organs from a few labelled CT volumes."""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from arena_seg.errors import InputError
from arena_seg.training.config import FinetuneConfig


def add_parser(sub: argparse._SubParsersAction) -> None:
    d = FinetuneConfig()
    p = sub.add_parser("finetune", help="few-shot fine-tuning (ARENA, LoRA, full, linear, BitFit)",
                       description=__doc__)
    p.add_argument("--images", nargs="+", required=True, help="CT volumes, or a folder of them")
    p.add_argument("--labels", nargs="+", required=True, help="label maps (same names as the images), or a folder")
    p.add_argument("--label", action="append", required=True, metavar="NAME[=ID]",
                   help="organ to learn and its id in the label files (repeat for several); a bare NAME takes "
                        "its id from labels.json beside the labels")
    p.add_argument("--model", default="default", help="foundation network or model folder (default: default)")
    p.add_argument("--checkpoint", default=None, help="weights for fseft-swinunetr / monai-wholebody")
    p.add_argument("--out", required=True, help="output folder (adapter, network/, manifest.json)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--method", default=d.method, help=f"arena, lora, full, linear or bitfit (default {d.method})")
    p.add_argument("--rank", type=int, default=d.rank, help=f"initial rank (default {d.rank})")
    p.add_argument("--lam", type=float, default=d.lam, help=f"l1 weight on the gates (default {d.lam})")
    p.add_argument("--gate-lr-mult", type=float, default=d.gate_lr_mult,
                   help=f"gate learning rate = lr × this (default {d.gate_lr_mult:g})")
    p.add_argument("--prox", default=d.prox, choices=("adam", "lr", "fixed"),
                   help=f"proximal threshold per step: adam (lr·λ/(√v̂+ε), λ in the loss's units), lr (lr·λ) or fixed "
                        f"(λ) (default {d.prox})")
    p.add_argument("--gate-optimizer", default=d.gate_optimizer, choices=("adamw", "sgd"),
                   help=f"gates in the adapters' AdamW or plain proximal SGD (default {d.gate_optimizer})")
    p.add_argument("--lam-warmup", type=float, default=d.lam_warmup, metavar="FRAC",
                   help=f"fraction of the steps with λ = 0 at the start (default {d.lam_warmup:g})")
    p.add_argument("--lam-ramp", type=float, default=d.lam_ramp, metavar="FRAC",
                   help=f"fraction of the steps over which λ then rises to its value (default {d.lam_ramp:g})")
    p.add_argument("--min-rank", type=int, default=d.min_rank,
                   help=f"no layer is pruned below this rank (default {d.min_rank})")
    p.add_argument("--refit", type=float, default=d.refit, metavar="FRAC",
                   help=f"fraction of the steps at the end with the pruned support frozen (default {d.refit:g})")
    p.add_argument("--lam-weight", default=d.lam_weight, choices=("none", "params"),
                   help=f"λ per layer: none (one λ) or params (times √(parameters per rank / their mean over the "
                        f"layers), a group-lasso weight) (default {d.lam_weight})")
    p.add_argument("--targets", nargs="+", default=None, help="module-name regexes to adapt (default: the model's)")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"epochs (default {d.epochs})")
    p.add_argument("--lr", type=float, default=d.lr, help=f"peak learning rate (default {d.lr})")
    p.add_argument("--num-samples", type=int, default=d.num_samples, help="patches per volume per epoch")
    p.add_argument("--val", type=int, default=0, help="volumes held out for validation and early stopping")
    p.add_argument("--seed", type=int, default=d.seed, help=f"seed (default {d.seed})")
    p.add_argument("--device", default=d.device, help="auto, cpu or cuda (default auto)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = FinetuneConfig(method=args.method, rank=args.rank, lam=args.lam, epochs=args.epochs, lr=args.lr,
                            gate_lr_mult=args.gate_lr_mult, prox=args.prox, gate_optimizer=args.gate_optimizer,
                            lam_warmup=args.lam_warmup, lam_ramp=args.lam_ramp, min_rank=args.min_rank,
                            refit=args.refit, lam_weight=args.lam_weight,
                            num_samples=args.num_samples, seed=args.seed, device=args.device,
                            targets=tuple(args.targets) if args.targets else None)
    finetune_to_folder(args.images, args.labels, args.label, args.out, config, model=args.model,
                       checkpoint=args.checkpoint, val=args.val, force=args.force)
    return 0


def finetune_to_folder(images: list[str], labels: list[str], organ_specs: list[str], out: str | Path,
                       config: FinetuneConfig, *, model: str = "default", checkpoint: str | None = None,
                       val: int = 0, force: bool = False) -> dict:
    """Fine-tune ``model`` on the image/label files for the ``NAME[=ID]`` organs; write the run folder ``out``.

    Every file is checked before anything is trained; ``out`` appears only when the run ends well. Returns the
    run's manifest.
    """
    from arena_seg.data.pairing import pair_volumes, parse_organs
    from arena_seg.data.volumes import check_label, read_volume
    from arena_seg.files import staged_output
    from arena_seg.inference.loading import load_model
    from arena_seg.training.engine import finetune
    from arena_seg.training.outputs import save_run

    organs = parse_organs(organ_specs, labels)
    pairs = pair_volumes(images, labels)
    for pair in pairs:  # every file is checked before anything is trained or written
        check_label(read_volume(pair["image"]), read_volume(pair["label"], "label"), list(organs.values()))
    if not 0 <= val < len(pairs):
        raise InputError(f"--val {val}: keep at least one of the {len(pairs)} volumes for training")
    order = list(range(len(pairs)))
    random.Random(config.seed).shuffle(order)
    held_out = [pairs[i] for i in order[:val]]
    train = [pairs[i] for i in sorted(order[val:])]
    network, spec = load_model(model, checkpoint)

    with staged_output(out, force=force) as stage:
        bar = ProgressBar(config.epochs)
        result = finetune(network, spec, organs, train, held_out, config, progress=bar.update_from,
                          log_dir=str(stage / "tensorboard"))
        bar.close()
        manifest = save_run(stage, result, spec, config, [p["id"] for p in train], [p["id"] for p in held_out])
    ranks = manifest["effective_ranks"]
    summary = f"mean effective rank {sum(ranks.values()) / len(ranks):.1f} over {len(ranks)} layers; " if ranks else ""
    print(f"wrote {out}: {summary}trainable parameters {result.params_start} -> {result.params_end}; "
          f"{result.epochs_run} epochs in {result.seconds:.0f} s")
    return manifest


class ProgressBar:
    def __init__(self, total: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="epoch", dynamic_ncols=True)

    def update_from(self, event: dict) -> None:
        info = {"loss": f"{event['loss']:.3f}"}
        if "mean_rank" in event:
            info["rank"] = f"{event['mean_rank']:.1f}"
        if event.get("val_mean_dice") is not None:
            info["dice"] = f"{event['val_mean_dice']:.3f}"
        self.bar.set_postfix(info)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()
