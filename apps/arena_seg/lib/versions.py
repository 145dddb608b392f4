"""Model versions of the arena trainer: one folder per finished run and a ``latest`` link that moves atomically.

Layout under ``<model_dir>/arena``::

    versions/v001/   adapter.safetensors, adapter.json, network/ (merged), manifest.json, tensorboard/
    versions/v002/
    latest -> versions/v002      (a relative symlink, replaced with os.replace: readers never see it half-moved)
    versions/.stage-v003/        a run in progress (or killed); never served, removed by the next run

A run writes into its stage folder; only when it ends well is the folder renamed to its id and ``latest`` moved.
A failed or killed run therefore never replaces a good model.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from arena_seg.library.store import claim_version, point_latest
from lib.atomic_store import pid_alive
from lib.errors import NoAdaptedModelError, UnknownVersionError

_ID = re.compile(r"v(\d{3,})")
_STAGE = ".stage-"
_OWNER = ".owner"  # the pid of the process writing a stage
_CLAIM_GRACE_S = 60.0


def _age(path: Path) -> float:
    import time

    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


class VersionStore:
    """Versions under ``root`` (``<model_dir>/arena``)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.versions_dir = self.root / "versions"
        self.latest_link = self.root / "latest"

    def list(self) -> list[str]:
        """Finished version ids, oldest first."""
        if not self.versions_dir.is_dir():
            return []
        ids = [p.name for p in self.versions_dir.iterdir() if _ID.fullmatch(p.name) and p.is_dir()]
        return sorted(ids, key=lambda v: int(v[1:]))

    def latest(self) -> str | None:
        """Id that ``latest`` points to, or None before the first good run."""
        try:
            target = os.readlink(self.latest_link)
        except OSError:
            return None
        name = Path(target).name
        return name if (self.versions_dir / name).is_dir() else None

    def resolve(self, ref: str | None = None) -> tuple[str, Path]:
        """(id, folder) of ``ref``: a version id, or None / "latest" for the latest one."""
        if ref in (None, "", "latest"):
            latest = self.latest()
            if latest is None:
                raise NoAdaptedModelError("no adapted model yet: save final labels of the configured organ(s) on at "
                                     "least one scan, then run the `arena` trainer (Train in Slicer)")
            return latest, self.versions_dir / latest
        ref = str(ref).strip()
        if not _ID.fullmatch(ref) or not (self.versions_dir / ref).is_dir():
            known = ", ".join(self.list()) or "none yet"
            raise UnknownVersionError(f"version {ref!r} does not exist; versions: {known}")
        return ref, self.versions_dir / ref

    def manifest(self, version: str) -> dict:
        """The manifest.json of a finished version."""
        _, folder = self.resolve(version)
        return json.loads((folder / "manifest.json").read_text())

    @contextlib.contextmanager
    def new_version(self) -> Iterator[tuple[str, Path]]:
        """Yield (id, stage folder) for a run; on a clean exit the folder becomes ``versions/<id>`` and ``latest``
        points to it. On any exception (or a kill) the stage is discarded and ``latest`` does not move."""
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        self.remove_stale_stages()
        version, stage = self._claim()
        try:
            yield version, stage
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
        final = self.versions_dir / version
        (stage / _OWNER).unlink(missing_ok=True)
        os.rename(stage, final)
        self._point_latest(version)

    def _claim(self) -> tuple[str, Path]:
        return claim_version(self.versions_dir)

    def _point_latest(self, version: str) -> None:
        point_latest(self.root, version)

    def remove_stale_stages(self) -> None:
        """Remove the stage folders of runs that never finished (a killed server leaves them); a stage whose
        writer still runs (another server or training process on the same model folder) is left alone."""
        for path in self.versions_dir.glob(f"{_STAGE}*"):
            try:
                owner = int((path / _OWNER).read_text())
            except (OSError, ValueError):
                owner = None
            if owner is not None and pid_alive(owner):
                continue
            if owner is None and _age(path) < _CLAIM_GRACE_S:  # being claimed right now: owner not yet written
                continue
            shutil.rmtree(path, ignore_errors=True)
