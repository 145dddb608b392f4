"""`arena-seg predict`: segment one CT volume; the mask lands on the input's grid with a label map beside it."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from arena_seg.errors import InputError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="segment a CT volume", description=__doc__)
    p.add_argument("--model", default="default",
                   help="default, a foundation name, a run folder, or library:DIR (an organ library)")
    p.add_argument("--checkpoint", default=None, help="weights for fseft-swinunetr / monai-wholebody")
    p.add_argument("--image", required=True, help="CT volume (.nii.gz, .nrrd, .mha)")
    p.add_argument("--out", required=True, help="output mask FILE.nii.gz (label map written as FILE.json)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    predict_file(args.image, args.out, model=args.model, checkpoint=args.checkpoint, device=args.device)
    return 0


def predict_file(image_path: str | Path, out: str | Path, *, model: str = "default", checkpoint: str | None = None,
                 device: str = "auto") -> Path:
    """Segment ``image_path`` with ``model`` into the NIfTI mask ``out`` (label map beside it); returns ``out``."""
    from arena_seg.data.volumes import read_volume
    from arena_seg.inference.loading import load_predictor
    from arena_seg.inference.predictor import write_mask

    if not str(out).endswith(".nii.gz"):
        raise InputError(f"--out {out}: the mask is written as NIfTI; end the name with .nii.gz")
    image = read_volume(image_path)  # fails early, with one line, on a missing, corrupt or non-3-D file
    predictor = load_predictor(model, checkpoint, device)
    start = time.perf_counter()
    mask = predictor.predict_array(image.array, image.affine)
    if mask.shape != image.shape:
        raise RuntimeError(f"mask shape {mask.shape} differs from image shape {image.shape}")
    written, labels = write_mask(mask, image.affine, out, predictor.labels)
    found = {name: int((mask == i).sum()) for name, i in predictor.labels.items()}
    print(f"wrote {written} and {labels} in {time.perf_counter() - start:.1f} s; voxels: "
          + ", ".join(f"{k} {v}" for k, v in found.items()))
    return Path(out)
