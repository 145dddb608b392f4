"""Networks the server serves, loaded once per device and kept: the foundation and the arena versions."""

from __future__ import annotations

import functools
import logging
import threading
from pathlib import Path

from arena_seg.adapters.io import base_weights_sha256
from arena_seg.inference.loading import load_model, network_dir
from arena_seg.inference.predictor import Predictor
from arena_seg.library import LibraryPredictor, OrganLibrary, output_ids
from arena_seg.models.checkpoint import read_network_config
from arena_seg.models.registry import default_model_dir, get_spec, list_foundations
from lib.conf import AppConf, resolve_device
from lib.organs import OrganRegistry
from lib.versions import VersionStore

logger = logging.getLogger(__name__)


def mask_labels(labels: dict[str, int], background_channel: int | None) -> dict[str, int]:
    """{organ: value in the mask} from a network's {organ: output channel} (as Predictor.labels does)."""
    shift = 1 if background_channel is None else 0
    return {name: int(channel) + shift for name, channel in sorted(labels.items(), key=lambda kv: kv[1])}


class ModelCache:
    """Loads networks lazily (the training subprocess builds the app too and needs none of them)."""

    def __init__(self, conf: AppConf, versions: VersionStore) -> None:
        self.conf = conf
        self.versions = versions
        self._lock = threading.Lock()
        self._foundation: dict[str, Predictor] = {}
        self._arena: dict[tuple[str, str], Predictor] = {}
        self._library_versions: dict[str, dict[str, Predictor]] = {}  # device → {version id: merged network}
        self._foundation_sha256: dict[tuple[str, ...], str] = {}

    def foundation_labels(self) -> dict[str, int]:
        """The foundation's {organ: mask value}, read without loading weights (for /info)."""
        ref = self.conf.foundation
        folder = default_model_dir() if ref == "default" and not self.conf.checkpoint else None
        if ref == "default" and self.conf.checkpoint:
            folder = Path(self.conf.checkpoint)
        if ref not in list_foundations():
            folder = network_dir(ref)
        if folder is not None:
            try:
                config = read_network_config(Path(folder))
                return mask_labels(config["labels"], config.get("background_channel", 0))
            except Exception as exc:  # a missing default model must not break /info; infer will say why
                logger.warning("cannot read the foundation's labels from %s: %s", folder, exc)
        spec = get_spec(ref if ref in list_foundations() else "default")
        return mask_labels(spec.labels, spec.background_channel)

    def foundation(self, device: str | None = None) -> Predictor:
        """Predictor of the configured foundation network on ``device``."""
        device = resolve_device(device, self.conf.device)
        with self._lock:
            if device not in self._foundation:
                model, spec = load_model(self.conf.foundation, self.conf.checkpoint)
                self._foundation[device] = Predictor(model, spec, device=device, amp=True)
                logger.info("loaded foundation %s on %s", self.conf.foundation, device)
            return self._foundation[device]

    def arena(self, version: str | None = None, device: str | None = None) -> tuple[Predictor, str]:
        """(Predictor, version id) of a version: ``version`` None means --conf version, else latest."""
        device = resolve_device(device, self.conf.device)
        version_id, folder = self.versions.resolve(version or self.conf.version)
        key = (version_id, device)
        with self._lock:
            if key not in self._arena:
                model, spec = load_model(str(folder / "network"))
                if len(self._arena) >= 2:  # keep memory bounded: drop the oldest
                    self._arena.pop(next(iter(self._arena)))
                self._arena[key] = Predictor(model, spec, device=device, amp=True)
                logger.info("loaded arena version %s on %s", version_id, device)
            return self._arena[key], version_id

    def library(self, pins: dict[str, str] | None = None, device: str | None = None) -> LibraryPredictor:
        """The foundation's organs plus every learned organ (latest good version each, or ``pins``)."""
        self.versions.resolve(None)  # NoAdaptedModelError (409) before the first good run
        device = resolve_device(device, self.conf.device)
        foundation = self.foundation(device)
        library = self.organ_library()
        with self._lock:
            cache = self._library_versions.setdefault(device, {})
            known = {v.id for v in library.versions()}
            for gone in set(cache) - known:
                cache.pop(gone)
            sha256 = self._served_sha256(foundation, library)
            return LibraryPredictor(foundation, library, pins, foundation_sha256=sha256, cache=cache)

    @functools.cached_property
    def registry(self) -> OrganRegistry:
        """The organs this server learns and their ids (organs.json; --conf labels first, then those labels add)."""
        return OrganRegistry(self.versions.root, self.conf.labels, self.foundation_labels())

    def organ_library(self) -> OrganLibrary:
        """The library of this server's versions, its organs' ids recorded (configured organs first)."""
        self.registry.ids()
        return self.registry.library

    def known_labels(self) -> dict[str, int]:
        """{organ: value} of the foundation's organs and every organ of the registry, learned or still to learn
        (what Slicer's segment list shows: each organ on the value it keeps)."""
        return output_ids(self.foundation_labels(), self.registry.ids())

    def _served_sha256(self, foundation: Predictor, library: OrganLibrary) -> str | None:
        """sha256 of the served foundation's weights, as adapters record it (their trainable head left out)."""
        adapter = next((v.adapter for v in library.versions() if v.adapter), None)
        if adapter is None:
            return None
        trainable = tuple(adapter["config"].get("trainable") or ())
        if trainable not in self._foundation_sha256:
            self._foundation_sha256[trainable] = base_weights_sha256(foundation.model, trainable)
        return self._foundation_sha256[trainable]

    def arena_labels(self, version: str | None = None) -> dict[str, int] | None:
        """{organ: mask value} of a version (None before the first good run)."""
        try:
            version_id, _ = self.versions.resolve(version or self.conf.version)
            return {k: int(v) for k, v in self.versions.manifest(version_id)["labels"].items()}
        except (LookupError, OSError, ValueError, KeyError):
            return None
