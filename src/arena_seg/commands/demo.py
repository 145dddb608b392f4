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
    from arena_seg.cli import main

    out = Path(args.out)
    data = out / "phantoms"
    if not (data / "labels.json").is_file():
        main(["phantoms", "--out", str(data), "--n", str(args.shots + 1), "--seed", "7"])
    images = sorted((data / "images").glob("*.nii.gz"))
    labels = sorted((data / "labels").glob("*.nii.gz"))
    test = images[-1]
    steps = [
        ["predict", "--model", "default", "--image", str(test), "--out", str(out / "foundation_mask.nii.gz")],
        ["finetune", "--images", *map(str, images[: args.shots]), "--labels", *map(str, labels[: args.shots]),
         "--label", args.organ, "--epochs", str(args.epochs), "--out", str(out / "model"), "--force"],
        ["predict", "--model", str(out / "model"), "--image", str(test), "--out", str(out / "arena_mask.nii.gz")],
    ]
    for step in steps:
        print("$ arena-seg " + " ".join(step), flush=True)
        code = main(step)
        if code:
            return code
    print(f"done: masks in {out}; open {test} with them in 3D Slicer or ITK-SNAP")
    return 0
