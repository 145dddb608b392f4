"""`arena-seg predict`: segment one CT volume; the mask lands on the input's grid with a label map beside it."""

from __future__ import annotations

import argparse
import time

from arena_seg.errors import InputError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="segment a CT volume", description=__doc__)
    p.add_argument("--model", default="default", help="default, a foundation name, or a run folder (default: default)")
    p.add_argument("--checkpoint", default=None, help="weights for fseft-swinunetr / monai-wholebody")
    p.add_argument("--image", required=True, help="CT volume (.nii.gz, .nrrd, .mha)")
    p.add_argument("--out", required=True, help="output mask FILE.nii.gz (label map written as FILE.json)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from arena_seg.data.volumes import read_volume
    from arena_seg.inference.loading import load_model
    from arena_seg.inference.predictor import Predictor, write_mask

    if not args.out.endswith(".nii.gz"):
        raise InputError(f"--out {args.out}: the mask is written as NIfTI; end the name with .nii.gz")
    image = read_volume(args.image)  # fails early, with one line, on a missing, corrupt or non-3-D file
    model, spec = load_model(args.model, args.checkpoint)
    start = time.perf_counter()
    predictor = Predictor(model, spec, device=args.device)
    mask = predictor.predict_array(image.array, image.affine)
    if mask.shape != image.shape:
        raise RuntimeError(f"mask shape {mask.shape} differs from image shape {image.shape}")
    out, labels = write_mask(mask, image.affine, args.out, predictor.labels)
    found = {name: int((mask == i).sum()) for name, i in predictor.labels.items()}
    print(f"wrote {out} and {labels} in {time.perf_counter() - start:.1f} s; voxels: "
          + ", ".join(f"{k} {v}" for k, v in found.items()))
    return 0
