"""Infer `foundation`: the configured foundation network's organs (the embedded model unless --conf says)."""

from __future__ import annotations

from typing import Any

from arena_seg.inference.predictor import Predictor
from lib.infers.segment import SegmentationTask


class FoundationInfer(SegmentationTask):
    """Segments the organs the foundation network was pretrained for."""

    def info(self) -> dict[str, Any]:
        info = super().info()
        info["labels"] = self.models.foundation_labels()
        return info

    def predictor(self, request: dict[str, Any]) -> tuple[Predictor, dict[str, Any]]:
        return self.models.foundation(request.get("device")), {"model": "foundation",
                                                               "foundation": self.models.conf.foundation}
