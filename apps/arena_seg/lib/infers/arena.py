"""Infer `arena`: one label map with the foundation's organs plus every organ the server has learned.

Each learned organ is served by its latest good version (each training run is a version, :mod:`lib.versions`),
or by a pinned one: ``versions`` ({organ: vNNN}, or "organ=vNNN,organ=vNNN") pins organs one by one, ``version``
pins every organ that version learned (and --conf version does so for the whole server). Overlaps go to the higher
probability; ids are stable (:mod:`arena_seg.library.combine`). 409 with a message before the first good run.
"""

from __future__ import annotations

from typing import Any

from arena_seg.errors import InputError
from arena_seg.inference.predictor import Predictor
from lib.infers.segment import SegmentationTask
from lib.models import ModelCache


class ArenaInfer(SegmentationTask):
    """Foundation organs + the organ library; ``/info`` lists the learned organs with their versions."""

    def info(self) -> dict[str, Any]:
        info = super().info()
        # every organ of the registry, learned or still to learn, so Slicer creates their segments (stable values)
        labels = self.models.known_labels()
        if self.models.versions.latest() is None:
            info["description"] = f"{self.description} (no adapted model yet: save labels, then train `arena`)"
        else:
            entries = self.models.organ_library().entries()
            learned = ", ".join(f"{e['organ']} {e['version']}" for e in entries)
            info["description"] = f"{self.description} (foundation organs + learned: {learned})"
            info["organ_library"] = entries
        info["labels"] = labels
        return info

    def config(self) -> dict[str, Any]:
        """``version``: Slicer shows the choices and sends the first; "latest" serves each organ's newest run."""
        versions = list(reversed(self.models.versions.list()))
        pinned = self.models.conf.version
        choices = ([pinned] if pinned else []) + ["latest"] + [v for v in versions if v != pinned]
        return {**super().config(), "version": choices, "versions": ""}

    def predictor(self, request: dict[str, Any]) -> tuple[Predictor, dict[str, Any]]:
        pins = request_pins(request, self.models)
        predictor = self.models.library(pins, request.get("device"))
        served = predictor.served
        latest = max(served.values(), key=lambda v: int(v[1:]), default=None)
        return predictor, {"model": "arena", "version": latest, "versions": served}


def request_pins(request: dict[str, Any], models: ModelCache) -> dict[str, str]:
    """{organ: version} from a request's ``version`` / ``versions`` options and --conf version."""
    pins: dict[str, str] = {}
    version = request.get("version")
    version = version[0] if isinstance(version, list) and version else version
    version = str(version or models.conf.version or "latest")
    if version != "latest":
        version_id, _ = models.versions.resolve(version)  # an unknown one: 404 with the versions known
        organs = models.versions.manifest(version_id).get("labels", {})
        pins.update({organ: version_id for organ in organs})
    pins.update(_parse_versions(request.get("versions")))
    return pins


def _parse_versions(value: Any) -> dict[str, str]:
    if value in (None, "", [], {}):
        return {}
    if isinstance(value, list):
        value = value[0]
    if isinstance(value, str):
        pairs = [p.split("=", 1) for p in value.split(",") if p.strip()]
        if any(len(p) != 2 for p in pairs):
            raise InputError(f"versions {value!r}: give organ=vNNN pairs, comma-separated")
        value = {k.strip(): v.strip() for k, v in pairs}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise InputError("versions: give {organ: vNNN} or 'organ=vNNN,...'")
    return dict(value)
