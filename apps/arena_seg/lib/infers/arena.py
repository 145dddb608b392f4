"""Infer `arena`: the adapted model of a version (the latest, --conf version, or the request's ``version``)."""

from __future__ import annotations

from typing import Any

from arena_seg.inference.predictor import Predictor
from lib.infers.segment import SegmentationTask


class ArenaInfer(SegmentationTask):
    """Segments the organs the served version was trained on; 409 with a message before the first good run."""

    def info(self) -> dict[str, Any]:
        info = super().info()
        labels = self.models.arena_labels()
        served = self.models.conf.version or self.models.versions.latest()
        if labels is None:  # nothing trained yet: list the organs to draw, so Slicer creates their segments
            labels = self.models.conf.organs
            info["description"] = f"{self.description} (no adapted model yet: save labels, then train `arena`)"
        else:
            info["description"] = f"{self.description} (version {served})"
        info["labels"] = labels
        return info

    def config(self) -> dict[str, Any]:
        """``version``: Slicer shows the choices and sends the first; "latest" follows new runs."""
        versions = list(reversed(self.models.versions.list()))
        pinned = self.models.conf.version
        choices = ([pinned] if pinned else []) + ["latest"] + [v for v in versions if v != pinned]
        return {**super().config(), "version": choices}

    def predictor(self, request: dict[str, Any]) -> tuple[Predictor, dict[str, Any]]:
        version = request.get("version")
        version = version[0] if isinstance(version, list) and version else version
        predictor, version_id = self.models.arena(str(version) if version else None, request.get("device"))
        return predictor, {"model": "arena", "version": version_id}
