"""`arena-seg demo`: the whole few-shot loop on generated phantoms, with the embedded default model."""

from __future__ import annotations

import argparse
from pathlib import Path

from arena_seg.training.config import FinetuneConfig


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="phantoms -> ARENA fine-tuning of a novel organ -> prediction",
                       description=__doc__)
    p.add_argument("--out", default="runs/sample", help="working folder (default runs/sample)")
    p.add_argument("--organ", default="gallbladder", help="novel organ to learn (default gallbladder)")
    p.add_argument("--shots", type=int, default=3, help="labelled volumes to learn from (default 3)")
    p.add_argument("--epochs", type=int, default=FinetuneConfig().epochs, help="fine-tuning epochs")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from arena_seg.commands.finetune import finetune_to_folder
    from arena_seg.commands.predict import predict_file
    from arena_seg.data.phantoms import write_phantoms

    out = Path(args.out)
    data = out / "phantoms"
    if not (data / "labels.json").is_file():
        _say("phantoms", "--out", data, "--n", args.shots + 1, "--seed", 7)
        write_phantoms(data, n=args.shots + 1, seed=7)
    images = sorted((data / "images").glob("*.nii.gz"))
    labels = sorted((data / "labels").glob("*.nii.gz"))
    test = images[-1]
    _say("predict", "--model", "default", "--image", test, "--out", out / "foundation_mask.nii.gz")
    predict_file(test, out / "foundation_mask.nii.gz", model="default")
    train_images, train_labels = [str(p) for p in images[: args.shots]], [str(p) for p in labels[: args.shots]]
    _say("finetune", "--images", *train_images, "--labels", *train_labels, "--label", args.organ,
         "--epochs", args.epochs, "--out", out / "model", "--force")
    finetune_to_folder(train_images, train_labels, [args.organ], out / "model", FinetuneConfig(epochs=args.epochs),
                       force=True)
    _say("predict", "--model", out / "model", "--image", test, "--out", out / "arena_mask.nii.gz")
    predict_file(test, out / "arena_mask.nii.gz", model=str(out / "model"))
    print(f"done: masks in {out}; open {test} with them in 3D Slicer or ITK-SNAP")
    return 0


def _say(*step: object) -> None:
    """Print the command line that does the same step, so the user can repeat or vary it."""
    print("$ arena-seg " + " ".join(map(str, step)), flush=True)
