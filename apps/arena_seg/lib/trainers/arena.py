"""The `arena` trainer: few-shot ARENA fine-tuning of the foundation on the datastore's final labels.

MONAI Label runs it in a subprocess of the server (``python -m monailabel.interfaces.utils.app -m train``). Each run
fine-tunes the foundation network afresh on every usable labelled scan, through arena-seg's engine (the one the
CLI uses), and becomes a new version (:mod:`lib.versions`) only if it ends well. Progress goes to the task's log
(``/train`` status "details") and to ``train_stats.json``, which ``/info`` → ``train_stats`` reads.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

from monailabel.interfaces.tasks.train import TrainTask

from arena_seg.errors import InputError
from arena_seg.files import write_json
from lib.conf import AppConf
from lib.train_options import TrainOptions, default_options, parse_options, split_items
from lib.versions import VersionStore

logger = logging.getLogger(__name__)


class ArenaTrain(TrainTask):
    """Train task whose every run is a version; stats survive the subprocess in a JSON file."""

    def __init__(self, conf: AppConf, versions: VersionStore) -> None:
        super().__init__(f"Few-shot ARENA fine-tuning of {conf.foundation} for {', '.join(conf.labels) or '(none)'}")
        self.conf = conf
        self.versions = versions
        self.stats_file = conf.arena_dir / "train_stats.json"

    def config(self) -> dict[str, Any]:
        return default_options(self.conf)

    def stats(self) -> dict[str, Any]:
        """What Slicer's progress and accuracy bars read: epoch, total_epochs, best_metric (a number), total_time
        (absent while a run is going, so the bar shows epochs)."""
        try:
            stats = json.loads(self.stats_file.read_text())
            if stats.get("status") == "RUNNING" and not _training_now():
                stats.update(status="STOPPED", total_time=stats.get("total_time") or 0.0)  # killed (Stop button)
            return stats
        except (OSError, ValueError):
            latest = self.versions.latest()
            if latest is None:
                return {}
            manifest = self.versions.manifest(latest)
            epochs = manifest.get("epochs_run", 0)
            best = _finite(float(manifest.get("best_metric", manifest.get("best_val_dice")) or 0.0)) or 0.0
            return {"epoch": epochs, "total_epochs": manifest.get("config", {}).get("epochs", epochs),
                    "best_metric": best, "metric": manifest.get("metric", "validation Dice"),
                    "total_time": manifest.get("seconds"), "version": latest, "status": "DONE"}

    def check(self, request: dict[str, Any], datastore: Any) -> tuple[TrainOptions, list[dict], list[dict]]:
        """Options and (train, val) scans of a request; raises InputError with what to fix."""
        if not self.conf.labels:
            raise InputError("this server learns no organs: start it with --conf labels NAME[,NAME...]")
        options = parse_options(request, self.conf)
        items, skipped = datastore.training_items()
        if skipped:
            logger.warning("skipping %d label(s) saved for other organs: %s", len(skipped), skipped)
        if not items:
            total = len(datastore.list_images())
            raise InputError(f"no scan has a final label of {', '.join(self.conf.labels)} yet (0 of {total} scans "
                             "labelled): draw the organ on at least one scan and save it, then train")
        train, val = split_items(items, options.val_split, options.config.seed)
        return options, train, val

    def __call__(self, request: dict[str, Any], datastore: Any) -> dict[str, Any]:
        from arena_seg.inference.loading import load_model
        from arena_seg.training.engine import finetune
        from arena_seg.training.outputs import save_run

        options, train, val = self.check(request, datastore)
        config = options.config
        start = time.time()
        recorder = _Recorder(self.stats_file, config.epochs)
        logger.info("arena: %s on %d scan(s) (%s), validating on %d (%s); options %s", ", ".join(self.conf.labels),
                    len(train), ", ".join(i["id"] for i in train), len(val), ", ".join(i["id"] for i in val) or "-",
                    options.values)
        try:
            model, spec = load_model(self.conf.foundation, self.conf.checkpoint)
            with self.versions.new_version() as (version, stage):
                recorder.version = version
                recorder.write({"status": "RUNNING", "epoch": 0})
                result = finetune(model, spec, self.conf.organs, train, val, config, progress=recorder.epoch,
                                  log_dir=str(stage / "tensorboard"))
                last = result.history[-1]["loss"] if result.history else float("nan")
                if not math.isfinite(last):
                    raise RuntimeError(f"the loss is {last}: the run is discarded; try a smaller lr")
                metric = self._metric(result, spec, train, val)
                manifest = save_run(stage, result, spec, config, [i["id"] for i in train], [i["id"] for i in val],
                                    extra={"version": version, "foundation_ref": self.conf.foundation,
                                           "label_ids": self.conf.organs, "request": options.values, **metric})
        except BaseException as exc:
            recorder.write({"status": "FAILED", "error": f"{type(exc).__name__}: {exc}",
                            "total_time": round(time.time() - start, 1)})
            logger.error("arena: the run failed and `latest` did not move: %s", exc)
            raise
        summary = {"version": version, "status": "DONE", "total_time": round(time.time() - start, 1),
                   "best_metric": metric["best_metric"], "metric": metric["metric"],
                   "effective_ranks": _rank_summary(result.ranks),
                   "train_images": manifest["data_ids"], "val_images": manifest["val_ids"]}
        recorder.write(summary)
        logger.info("arena: version %s is now latest (%s)", version, json.dumps(summary))
        return summary


    def _metric(self, result: Any, spec: Any, train: list[dict], val: list[dict]) -> dict[str, Any]:
        """The figure Slicer's accuracy bar shows (``best_metric``) and what it is (``metric``). With a few shots
        there is often no scan to hold out; then the Dice on the training scans is reported, and named so,
        rather than a 0 that reads as a failed run."""
        if val:
            return {"best_metric": float(result.best_metric or 0.0),
                    "metric": f"validation Dice (best epoch, {len(val)} held-out scan(s))"}
        from arena_seg.training.evaluate import evaluate

        device = next(result.model.parameters()).device
        names = list(self.conf.organs)
        label_map = {file_id: i + 1 for i, file_id in enumerate(self.conf.organs.values())}
        dice = evaluate(result.model, spec.preprocessing, train, label_map, names, device)
        finite = [d for d in dice.values() if math.isfinite(d)]
        return {"best_metric": float(sum(finite) / len(finite)) if finite else 0.0, "train_dice": _finite(dice),
                "metric": f"training Dice on the {len(train)} labelled scan(s): no scan held out, so not a "
                          "validation figure (hold scans out with the val_split option)"}


class _Recorder:
    """Writes train_stats.json atomically after every epoch and logs one line per epoch."""

    def __init__(self, path: Path, total_epochs: int) -> None:
        self.path = path
        self.version: str | None = None
        self.state: dict[str, Any] = {"epoch": 0, "total_epochs": total_epochs, "best_metric": 0.0,
                                      "start_ts": time.strftime("%Y-%m-%d %H:%M:%S")}

    def epoch(self, event: dict) -> None:
        dice = event.get("val_mean_dice")
        self.write({"epoch": event["epoch"], "total_epochs": event["total_epochs"], "loss": event["loss"],
                    "best_metric": float(event.get("best_metric") or 0.0), "val_dice": event.get("val_dice"),
                    "effective_ranks": _rank_summary(event.get("ranks") or {})})
        ranks = self.state["effective_ranks"]
        logger.info("arena epoch %d/%d: loss %.4f, val Dice %s, effective rank mean %s over %s layers",
                    event["epoch"], event["total_epochs"], event["loss"],
                    "-" if dice is None or not math.isfinite(dice) else f"{dice:.3f}", ranks.get("mean", "-"),
                    ranks.get("layers", 0))

    def write(self, update: dict[str, Any]) -> None:
        self.state.update(update, version=self.version)
        write_json(self.path, _finite(self.state), indent=None, default=str)


def _training_now() -> bool:
    """Whether the server has a training subprocess running (stats are read in the server process)."""
    from monailabel.utils.async_tasks.utils import processes

    return bool(processes("train"))


def _rank_summary(ranks: dict[str, int]) -> dict[str, Any]:
    if not ranks:
        return {}
    values = list(ranks.values())
    return {"mean": round(sum(values) / len(values), 2), "min": min(values), "max": max(values),
            "layers": len(values)}


def _finite(value: Any) -> Any:
    """NaN/inf become None: /info is JSON, and JSON has no NaN (the server would answer 500)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
