"""What both infer tasks share: read the image, run arena-seg's Predictor, write the mask as the client asks.

arena-seg's Predictor already does the whole pipeline (orientation, spacing, HU window, sliding window, inversion
to the input grid), so the tasks implement MONAI Label's InferTask directly instead of BasicInferTask's transforms.
The result JSON carries ``label_names`` ({organ: mask value}), which Slicer uses to name the segments.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from typing import Any

import numpy as np
from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType

from arena_seg.data.volumes import read_volume
from arena_seg.inference.memory import PeakMemory, label_counts
from arena_seg.inference.predictor import Predictor
from lib.conf import device_choices
from lib.models import ModelCache
from lib.writer import check_result_format, write_result


class SegmentationTask(InferTask):
    """A 3-D segmentation model of type ``segmentation`` (what Slicer lists under Auto Segmentation)."""

    def __init__(self, models: ModelCache, description: str) -> None:
        super().__init__(type=InferType.SEGMENTATION, labels={}, dimension=3, description=description)
        self.models = models

    def config(self) -> dict[str, Any]:
        return {"device": ["auto", *device_choices()]}

    def is_valid(self) -> bool:
        return True

    @abstractmethod
    def predictor(self, request: dict[str, Any]) -> tuple[Predictor, dict[str, Any]]:
        """The network for this request and extra fields for the result JSON (each infer model says which)."""

    def __call__(self, request: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        start = time.time()
        predictor, extra = self.predictor(request)
        loaded = time.time()
        image = read_volume(request["image"])
        labels = predictor.labels
        ext, dtype = check_result_format(request.get("result_extension"), request.get("result_dtype"),
                                         max(labels.values(), default=1))
        with PeakMemory(predictor.device) as peak:  # the process's peak during this scan (other requests count)
            mask = predictor.predict_array(image.array, image.affine)
        inferred = time.time()
        path = write_result(mask, image.affine, ext, dtype)
        present = [int(v) for v in np.flatnonzero(label_counts(mask)) if v != 0]
        result = {
            "label_names": labels,
            "labels_present": [name for name, value in labels.items() if value in present],
            "device": str(predictor.device),
            "latencies": {"load": round(loaded - start, 3), "infer": round(inferred - loaded, 3),
                          "write": round(time.time() - inferred, 3), "total": round(time.time() - start, 3)},
            "memory": peak.result,
            **extra,
        }
        return path, result
