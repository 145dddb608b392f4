"""MONAI Label's batch infer endpoint (POST /batch/infer/<model>) on arena-seg's BatchRunner.

Stock MONAI Label runs its full per-image infer once per datastore image. Here the model is loaded once and
the CLI's runner (`arena-seg infer`) segments image after image with read-ahead and write-behind; each mask is
then saved as the image's label (tag ``label_tag``, default "original"), so Slicer's "next sample" and the
datastore see it. The runner's files and report.json stay under ``<model dir>/batch/<run>/`` (DICOM SEG too,
for DICOM datastores, left out with a warning when the source has no UIDs to reference), and the task returns
{image id: {"label", "status", "reason", "warnings", "volumes_ml"}} plus a "_summary" line.
"""

from __future__ import annotations

import datetime as _dt
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from monailabel.interfaces.datastore import Datastore, DefaultLabelTag
from monailabel.interfaces.tasks.batch_infer import BatchInferTask

from arena_seg.errors import InputError
from arena_seg.inference.batch import BatchRunner, summary_line
from arena_seg.inference.batch_inputs import SeriesItem
from lib.models import ModelCache

logger = logging.getLogger(__name__)


class ArenaBatchInfer(BatchInferTask):
    """Batch inference over datastore images with one loaded model (``foundation`` or ``arena``)."""

    def __init__(self, models: ModelCache, out_root: Path) -> None:
        self.models = models
        self.out_root = Path(out_root)

    def __call__(self, request: dict[str, Any], datastore: Datastore, infer: Callable | None = None) -> dict:
        model = request.get("model")
        device = request.get("device")
        if not torch.cuda.is_available() and str(device or "").startswith("cuda"):
            device = None  # the endpoint's default asks for cuda; a CPU server uses its --conf device
        if model == "foundation":
            predictor, ref = self.models.foundation(device), "foundation"
        elif model == "arena":
            from lib.infers.arena import request_pins

            predictor = self.models.library(request_pins(request, self.models), device)
            ref = "arena/" + ",".join(f"{o}={v}" for o, v in sorted(predictor.served.items()))
        else:
            raise InputError(f"unknown model {model!r} for batch infer; choose foundation or arena")
        image_ids = sorted(self.get_images(request, datastore))
        max_batch_size = int(request.get("max_batch_size") or 0)
        if max_batch_size > 0:
            image_ids = image_ids[:max_batch_size]
        items = {item.key: (image_id, item) for image_id in image_ids
                 if (item := _series_item(image_id, datastore.get_image_uri(image_id)))}
        label_tag = request.get("label_tag") or DefaultLabelTag.ORIGINAL
        result: dict[str, Any] = {image_id: None for image_id in image_ids}
        if not items:
            result["_summary"] = "no images to segment"
            return result

        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        out = self.out_root / f"{model}-{stamp}"
        runner = BatchRunner(predictor, formats=("nifti", "seg"), model_ref=ref, overwrite=True)
        source = str(getattr(datastore, "_datastore_path", "") or "datastore")
        report = runner.run([item for _, item in items.values()], out, sources=[source])
        for entry in report["series"]:
            image_id, _ = items[entry["key"]]
            answer = {"status": entry["status"], "reason": entry.get("reason"),
                      "warnings": entry.get("warnings", []), "volumes_ml": entry.get("volumes_ml", {})}
            nifti = entry.get("outputs", {}).get("nifti")
            if entry["status"] == "done" and nifti and request.get("save_label", True):
                answer["label"] = datastore.save_label(
                    image_id, str(out / nifti), label_tag,
                    {"model": model, "version": ref, "label_names": runner.labels, "batch": out.name})
            result[image_id] = answer
        result["_summary"] = summary_line(report)
        logger.info("batch infer %s: %s (files in %s)", ref, result["_summary"], out)
        return result


def _series_item(image_id: str, uri: str) -> SeriesItem | None:
    """A runner work item for a datastore image: a volume file, or a folder holding one DICOM series."""
    path = Path(uri)
    key = re.sub(r"[^A-Za-z0-9._-]+", "_", image_id).strip("._") or "image"
    if path.is_file():
        return SeriesItem(key, "nifti", [str(path)], path.name)
    if path.is_dir():
        from arena_seg.data.dicom_read import find_dicom_series

        found, _ = find_dicom_series(path)
        series = [s for s in found if not s.skip] or found[:1]  # a scout series beside the CT is no second image
        if len(series) == 1:
            s = series[0]
            left_out = [f"{o.folder.name or path.name}: {o.skip}" for o in found if o is not s]
            notes = s.notes + ([f"series left out of the image folder: {'; '.join(left_out)}"] if left_out else [])
            return SeriesItem(key, "dicom", [str(f) for f in s.files], path.name, s.uid, s.modality, s.description,
                              skip=s.skip, notes=notes)
        reason = "no DICOM series" if not series else f"{len(series)} DICOM series in one image folder"
        return SeriesItem(key, "file", [str(path)], path.name, error=reason)
    logger.warning("batch infer: image %s has no file at %s", image_id, uri)
    return SeriesItem(key, "file", [str(path)], path.name, error=f"image file {uri} is missing")


def check_batch_request(params: dict[str, Any], datastore: Datastore) -> None:
    """Raise HTTPException 400 for batch options the runner would misuse: ``images`` other than all / labeled /
    unlabeled or a list of datastore ids (never paths), a label tag outside the vocabulary, a bad batch size."""
    from fastapi import HTTPException

    from lib.names import check_tag

    images = params.get("images")
    if isinstance(images, list):
        known = set(datastore.list_images())
        unknown = [str(i)[:80] for i in images if not isinstance(i, str) or i not in known]
        if unknown:
            raise HTTPException(status_code=400, detail=f"batch images {unknown[:5]} are not datastore image ids; "
                                                        "give ids from /datastore, or all / labeled / unlabeled")
    elif images is not None and str(getattr(images, "value", images)) not in ("all", "labeled", "unlabeled"):
        raise HTTPException(status_code=400, detail=f"batch images {str(images)[:80]!r}: give all, labeled, "
                                                    "unlabeled or a list of datastore image ids")
    if params.get("label_tag") is not None:
        check_tag(params["label_tag"])
    size = params.get("max_batch_size", 0)
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= 1_000_000:
        raise HTTPException(status_code=400, detail=f"max_batch_size {str(size)[:40]!r}: give an integer ≥ 0 "
                                                    "(0: every image)")
