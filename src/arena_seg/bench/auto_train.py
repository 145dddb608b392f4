"""Submit Label → served update, with ``--conf auto_train true``: the MONAI Label app driven by monailabel's client.

``python -m arena_seg.bench.auto_train [--organ pancreas] [--shots 3] [--held-out 1] [--first-epochs 20]
[--end-train] [--out DIR]`` writes phantom studies, starts the real server (the embedded default foundation,
``auto_train true``, ``epochs --first-epochs``), then saves the organ's truth label on one study after another, never
pressing Train. After each save it polls ``/info`` until the organ's new version is listed (the auto-training run
landed), then infers ``arena`` on the ``--held-out`` studies nobody labelled and checks that each answer was served
by that version. The first save gets a full run from scratch (``--first-epochs``); every later one a warm-started
update of ``auto_train_epochs``. Prints and writes (DIR/auto_train.json) the seconds from each save to the version
landing and to the served answer, and the Dice of the answers on the held-out studies.

``--end-train`` then presses Train once, as without auto-training: one run from scratch on every saved label, with
the options of a normal run (``max_epochs`` = the server's ``epochs``, the app's other defaults, the same as the
first auto-training run), and scores it on the same held-out studies: Dice against the number of labels with
auto-training versus one training at the end.
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


def _learned(client, organ: str) -> str | None:
    """The version serving ``organ`` as /info lists it (None before its first)."""
    for entry in client.info()["models"]["arena"].get("organ_library") or []:
        if entry["organ"] == organ:
            return entry["version"]
    return None


def _score(client, organ: str, version: str, studies: list[str], truth: dict, organ_id: int) -> dict[str, float]:
    """{study: Dice of the organ in infer ``arena``'s answer}, each answer checked to come from ``version``."""
    from arena_seg.data.volumes import read_volume

    dice = {}
    for name in studies:
        result, params = client.infer("arena", name, {})
        if params["versions"].get(organ) != version:
            raise SystemExit(f"infer served {params['versions']} instead of {version}")
        pred = read_volume(result, "label").array == params["label_names"][organ]  # the organ's id, not 1
        ref = truth[name].array == organ_id
        dice[name] = round(float(2 * (pred & ref).sum() / max(pred.sum() + ref.sum(), 1)), 3)
    return dice


def _figures(out: Path, version: str, dice: dict[str, float]) -> dict:
    """What a row records of a version: its manifest's run figures and the held-out Dice."""
    m = json.loads((out / "model" / "arena" / "versions" / version / "manifest.json").read_text())
    return {"version": version, "warm_start": m.get("warm_start"), "epochs": m.get("epochs_run"),
            "train_seconds": m.get("seconds"), "train_scans": len(m.get("data_ids", [])),
            "val_scans": len(m.get("val_ids", [])), "dice": round(float(np.mean(list(dice.values()))), 3),
            "dice_by_study": dice, "training_dice": m.get("best_metric"), "metric": m.get("metric")}


def _wait_idle(client, timeout: float) -> dict:
    """The last training's status once nothing is queued for auto-training and no training waits or runs."""
    start = time.perf_counter()
    while True:
        status = client.train_status()
        if not client.info()["auto_train"]["pending"] and status.get("status") not in ("SUBMITTED", "RUNNING"):
            return status
        if time.perf_counter() - start > timeout:
            raise SystemExit(f"training still busy after {timeout:.0f} s")
        time.sleep(2)


def main(argv: list[str] | None = None) -> int:
    from monailabel.client import MONAILabelClient

    from arena_seg.data.volumes import read_volume
    from arena_seg.files import write_nifti_mask
    from arena_seg.organs import PHANTOM_LABELS
    from arena_seg.serving import running_app, write_phantom_studies

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--organ", default="pancreas")
    p.add_argument("--shots", type=int, default=3, help="labels saved one after another")
    p.add_argument("--held-out", type=int, default=1, help="studies nobody labels, scored after every version")
    p.add_argument("--end-train", action="store_true",
                   help="then train once from scratch on all the labels (a normal run) and score it too")
    p.add_argument("--first-epochs", type=int, default=20, help="epochs of the organ's first (from scratch) run")
    p.add_argument("--auto-epochs", type=int, default=None, help="--conf auto_train_epochs (default: the app's)")
    p.add_argument("--out", default="runs/auto-train")
    p.add_argument("--timeout", type=float, default=1800, help="give up waiting for a version after this many s")
    args = p.parse_args(argv)
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    studies = out / "studies"
    names = write_phantom_studies(studies, args.shots + args.held_out, 3.0, seed=31)
    truth = {n: read_volume(studies.with_name("studies-truth") / f"{n}.nii.gz", "label") for n in names}
    organ_id = PHANTOM_LABELS[args.organ]

    conf = {"labels": args.organ, "model_dir": str((out / "model").resolve()), "auto_train": "true",
            "epochs": str(args.first_epochs)}
    if args.auto_epochs:
        conf["auto_train_epochs"] = str(args.auto_epochs)
    rows, end = [], None
    with running_app(out, studies, conf) as url:
        client = MONAILabelClient(url, tmpdir=tempfile.mkdtemp(dir=out))
        auto_epochs = client.info()["auto_train"]["epochs"]
        scored = names[args.shots:]
        for shot, name in enumerate(names[: args.shots], start=1):
            before = _learned(client, args.organ)
            mask = (truth[name].array == organ_id).astype(np.uint8)
            path = write_nifti_mask(out / f"{name}-label.nii.gz", mask, truth[name].affine)
            start = time.perf_counter()
            client.save_label(name, str(path), params={"label_info": [{"name": args.organ, "idx": 1}]})
            while (version := _learned(client, args.organ)) == before:
                if time.perf_counter() - start > args.timeout:
                    raise SystemExit(f"no new version {args.timeout:.0f} s after saving {name}")
                time.sleep(1)
            landed = time.perf_counter() - start
            dice = _score(client, args.organ, version, scored[:1], truth, organ_id)
            served = time.perf_counter() - start
            dice.update(_score(client, args.organ, version, scored[1:], truth, organ_id))
            rows.append({"shots": shot, **_figures(out, version, dice), "save_to_version_s": round(landed, 1),
                         "save_to_served_s": round(served, 1)})
            print(json.dumps(rows[-1]), flush=True)
        if args.end_train:  # one training at the end: Train pressed once, from scratch, on every label
            before = _wait_idle(client, args.timeout) and _learned(client, args.organ)
            request = {"organs": args.organ, "max_epochs": args.first_epochs}  # as the first auto-training run
            start = time.perf_counter()
            client.train_start("arena", request)
            status = _wait_idle(client, args.timeout)
            train_s = time.perf_counter() - start
            if status.get("status") != "DONE":
                raise SystemExit(f"the end training ended {status.get('status')}: {status.get('details', [])[-5:]}")
            version = _learned(client, args.organ)
            if version == before:
                raise SystemExit(f"the end training left {args.organ} on {before}")
            dice = _score(client, args.organ, version, scored, truth, organ_id)
            end = {"shots": args.shots, "request": request, **_figures(out, version, dice),
                   "press_train_to_version_s": round(train_s, 1)}
            print(json.dumps({"end_training": end}), flush=True)
    figures = {"organ": args.organ, "first_epochs": args.first_epochs, "auto_train_epochs": auto_epochs,
               "scored_studies": scored, "rows": rows, "end_training": end,
               "auto_train_epochs_total": sum(int(r["epochs"] or 0) for r in rows),
               "threads": os.environ.get("OMP_NUM_THREADS"),
               "load_average": os.getloadavg()}
    (out / "auto_train.json").write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
