"""The `arena` trainer: few-shot ARENA fine-tuning of the foundation on the datastore's final labels.

MONAI Label runs it in a subprocess of the server (``python -m monailabel.interfaces.utils.app -m train``). Each run
learns the organs of its ``organs`` option (default ``--conf labels``) from every final label that contains them,
through arena-seg's engine (the one the CLI uses): afresh, or with ``warm_start`` from the adapter of their latest
version (:mod:`arena_seg.training.warm_start`; the auto-trainer's short updates). A run becomes a new version
(:mod:`lib.versions`) only if it ends well; the other organs' versions are never touched. Progress goes to the
task's log (``/train`` status "details") and to ``train_stats.json``, which ``/info`` → ``train_stats`` reads.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monailabel.interfaces.tasks.train import TrainTask

from arena_seg.errors import InputError
from arena_seg.files import write_json
from arena_seg.library import OrganLibrary, Version
from lib.conf import AppConf
from lib.organs import OrganRegistry
from lib.train_options import TrainOptions, default_options, parse_options, split_items
from lib.trainers.run_organs import run_organs, warm_source
from lib.versions import VersionStore

logger = logging.getLogger(__name__)


@dataclass
class Run:
    """A checked train request: its options, organs ({organ: id in stored labels}), scans and warm-start source."""

    options: TrainOptions
    organs: dict[str, int]
    train: list[dict]
    val: list[dict]
    source: Version | None = None


class ArenaTrain(TrainTask):
    """Train task whose every run is a version; stats survive the subprocess in a JSON file."""

    def __init__(self, conf: AppConf, versions: VersionStore, registry: OrganRegistry) -> None:
        organs = ", ".join(conf.labels) or "the organs named in the train options"
        super().__init__(f"Few-shot ARENA fine-tuning of {conf.foundation} for {organs}")
        self.conf = conf
        self.versions = versions
        self.registry = registry
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

    def check(self, request: dict[str, Any], datastore: Any) -> Run:
        """Options, organs, (train, val) scans and warm-start source of a request; InputError with what to fix."""
        options = parse_options(request, self.conf)
        organs = run_organs(options.organs, self.registry, datastore)
        items, skipped = datastore.training_items(organs)
        if skipped:
            logger.warning("skipping %d label(s) saved with other organ ids: %s", len(skipped), skipped)
        if not items:
            raise InputError(f"every final label of {', '.join(organs)} was saved with other organ ids "
                             f"({', '.join(skipped)}): save them again")
        source = None
        if options.warm_start:
            source = warm_source(OrganLibrary(self.versions.root).resolve(), list(organs))
        train, val = split_items(items, options.val_split, options.config.seed)
        return Run(options, organs, train, val, source)

    def __call__(self, request: dict[str, Any], datastore: Any) -> dict[str, Any]:
        from arena_seg.inference.loading import load_model
        from arena_seg.training.engine import finetune
        from arena_seg.training.outputs import save_run
        from arena_seg.training.warm_start import WarmStart, adapter_file

        run = self.check(request, datastore)
        options, train, val, config, method = run.options, run.train, run.val, run.options.config, None
        if run.source is not None:  # the saved adapter's method and ranks go on; the run's other options apply
            method = WarmStart(adapter_file(run.source.folder), run.source.organs, list(run.organs))
            config = dataclasses.replace(config, method=str(run.source.manifest.get("method") or config.method))
        start = time.time()
        recorder = _Recorder(self.stats_file, config.epochs)
        logger.info("arena: %s on %d scan(s) (%s), validating on %d (%s)%s; options %s", ", ".join(run.organs),
                    len(train), ", ".join(i["id"] for i in train), len(val), ", ".join(i["id"] for i in val) or "-",
                    f", warm start from {run.source.id}" if run.source else "", options.values)
        try:
            model, spec = load_model(self.conf.foundation, self.conf.checkpoint)
            with self.versions.new_version() as (version, stage):
                recorder.version = version
                recorder.write({"status": "RUNNING", "epoch": 0})
                result = finetune(model, spec, run.organs, train, val, config, progress=recorder.epoch,
                                  log_dir=str(stage / "tensorboard"), method=method)
                last = result.history[-1]["loss"] if result.history else float("nan")
                if not math.isfinite(last):
                    raise RuntimeError(f"the loss is {last}: the run is discarded; try a smaller lr")
                metric = self._metric(result, spec, run.organs, train, val)
                manifest = save_run(stage, result, spec, config, [i["id"] for i in train], [i["id"] for i in val],
                                    extra={"version": version, "foundation_ref": self.conf.foundation,
                                           "label_ids": run.organs, "request": options.values,
                                           "warm_start": run.source.id if run.source else None,
                                           "auto_train": options.auto_train, **metric})
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


    def _metric(self, result: Any, spec: Any, organs: dict[str, int], train: list[dict], val: list[dict]
                ) -> dict[str, Any]:
        """The figure Slicer's accuracy bar shows (``best_metric``) and what it is (``metric``). With a few shots
        there is often no scan to hold out; then the Dice on the training scans is reported, and named so,
        rather than a 0 that reads as a failed run."""
        if val:
            return {"best_metric": float(result.best_metric or 0.0),
                    "metric": f"validation Dice (best epoch, {len(val)} held-out scan(s))"}
        from arena_seg.training.evaluate import evaluate

        device = next(result.model.parameters()).device
        names = list(organs)
        label_map = {file_id: i + 1 for i, file_id in enumerate(organs.values())}
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
