"""Press Train → usable model: the MONAI Label app, driven by monailabel's client as 3D Slicer drives it.

``python -m arena_seg.bench.app_train [--organ pancreas] [--shots 2] [--out DIR]`` writes phantom studies, starts
the real server (``monailabel start_server`` on a free loopback port, the embedded default foundation), saves the
organ's truth labels on ``--shots`` studies, presses Train with the trainer options /info offers (what Slicer's
panel sends when nobody edits them), polls /train until it ends, infers ``arena`` on every unlabelled study and
prints the Dice against the truth and the seconds from Train to a servable model. Figures go to DIR/app_train.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def _slicer_options(info: dict) -> dict:
    """The train options Slicer's panel sends untouched: each /info default, the first item of a list."""
    config = info["trainers"]["arena"]["config"]
    return {k: (v[0] if isinstance(v, list) else v) for k, v in config.items()}


def organ_value(params: dict, organ: str) -> int:
    """The organ's value in infer ``arena``'s mask, from the answer's label names. Not 1: the mask holds the
    foundation's organs on their own values (1 is the foundation's first organ) and each learned organ on the id
    the organ library gave it."""
    names = params.get("label_names") or {}
    if organ not in names:
        raise SystemExit(f"the answer names no {organ!r}: its labels are {sorted(names)}")
    return int(names[organ])


def main(argv: list[str] | None = None) -> int:
    from monailabel.client import MONAILabelClient

    from arena_seg.data.volumes import read_volume
    from arena_seg.files import write_nifti_mask
    from arena_seg.organs import PHANTOM_LABELS
    from arena_seg.serving import running_app, write_phantom_studies

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--organ", default="pancreas")
    p.add_argument("--shots", type=int, default=2)
    p.add_argument("--studies", type=int, default=6, help="phantom studies (the rest are scored)")
    p.add_argument("--out", default="runs/app-train")
    p.add_argument("--timeout", type=float, default=1800, help="give up on training after this many seconds")
    args = p.parse_args(argv)
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    studies = out / "studies"
    names = write_phantom_studies(studies, args.studies, 3.0, seed=31)
    truth = {n: read_volume(studies.with_name("studies-truth") / f"{n}.nii.gz", "label") for n in names}
    organ_id = PHANTOM_LABELS[args.organ]

    conf = {"labels": args.organ, "model_dir": str((out / "model").resolve())}
    with running_app(out, studies, conf) as url:
        client = MONAILabelClient(url, tmpdir=tempfile.mkdtemp(dir=out))
        support, scored = names[: args.shots], names[args.shots:]
        for name in support:
            vol = truth[name]
            mask = (vol.array == organ_id).astype(np.uint8)
            path = out / f"{name}-label.nii.gz"
            write_nifti_mask(path, mask, vol.affine)
            client.save_label(name, str(path), params={"label_info": [{"name": args.organ, "idx": 1}]})
        options = _slicer_options(client.info())
        start = time.perf_counter()
        client.train_start("arena", options)
        while True:
            status = client.train_status()
            if status.get("status") not in ("SUBMITTED", "RUNNING"):
                break
            if time.perf_counter() - start > args.timeout:
                client.train_stop()
                raise SystemExit(f"training did not finish in {args.timeout:.0f} s")
            time.sleep(2)
        train_s = time.perf_counter() - start
        if status.get("status") != "DONE":
            raise SystemExit(f"training ended {status.get('status')}: {status.get('details', [])[-5:]}")
        dice, infer_s = {}, []
        for name in scored:
            t0 = time.perf_counter()
            result, params = client.infer("arena", name, {})
            infer_s.append(time.perf_counter() - t0)
            pred = read_volume(result, "label").array == organ_value(params, args.organ)
            ref = truth[name].array == organ_id
            dice[name] = float(2 * (pred & ref).sum() / max(pred.sum() + ref.sum(), 1))
        stats = client.info()["train_stats"]["arena"]
    figures = {"organ": args.organ, "shots": args.shots, "train_options": options,
               "seconds_press_train_to_model": round(train_s, 1), "train_stats": stats, "dice": dice,
               "mean_dice": round(float(np.mean(list(dice.values()))), 3),
               "infer_seconds_mean": round(float(np.mean(infer_s)), 1), "threads": os.environ.get("OMP_NUM_THREADS")}
    (out / "app_train.json").write_text(json.dumps(figures, indent=2))
    print(f"{args.organ}, {args.shots} labelled studies, default train options: Train → model in {train_s:.0f} s; "
          f"Dice on {len(dice)} other studies: mean {figures['mean_dice']:.3f} "
          f"({', '.join(f'{d:.3f}' for d in dice.values())}); arena infer {figures['infer_seconds_mean']:.1f} s each")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
