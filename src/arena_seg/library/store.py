"""An organ library: every good fine-tuning run of one foundation network, read as the organs it learned.

Layout (what the MONAI Label app's version store writes, ``<model_dir>/arena``)::

    versions/v001/   adapter.safetensors + adapter.json (ARENA/LoRA runs), network/ (merged), manifest.json
    versions/v002/   ...
    organs.json      {"organs": {name: id}}: an organ keeps its id once given
    latest -> versions/v002   the newest finished version (a training run or an import moves it)

An organ's versions are the runs whose manifest lists it; its latest good version is the newest of them (a failed
run never becomes a version). Each adapter records the sha256 of the foundation weights it was trained on; one
trained on another foundation is refused (:meth:`OrganLibrary.check_foundation`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arena_seg.errors import InputError
from arena_seg.files import staged_output, write_json

VERSION = re.compile(r"v(\d{3,})")
ORGANS_FILE = "organs.json"
_STAGE, _OWNER = ".stage-", ".owner"  # a version being written, and the pid of its writer


@dataclass(frozen=True)
class Version:
    """A finished run: its id, folder and manifest."""

    id: str
    folder: Path
    manifest: dict[str, Any]

    @property
    def organs(self) -> dict[str, int]:
        """{organ: output channel of the version's network}."""
        return {str(k): int(v) for k, v in self.manifest.get("labels", {}).items()}

    @property
    def adapter(self) -> dict[str, Any] | None:
        """The adapter's manifest (adapter.json), or None for a run without adapters (full, linear, bitfit)."""
        path = self.folder / "adapter.json"
        return json.loads(path.read_text()) if path.is_file() else None


class OrganLibrary:
    """Read (and, for import and id assignment, write) the library under ``root``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.versions_dir = self.root / "versions"

    def versions(self) -> list[Version]:
        """Finished versions, oldest first (folders without a manifest or network are not versions)."""
        if not self.versions_dir.is_dir():
            return []
        found = []
        for folder in self.versions_dir.iterdir():
            if VERSION.fullmatch(folder.name) and (folder / "manifest.json").is_file() and (
                    folder / "network" / "network.json").is_file():
                found.append(Version(folder.name, folder, json.loads((folder / "manifest.json").read_text())))
        return sorted(found, key=lambda v: int(v.id[1:]))

    def organs(self) -> dict[str, list[Version]]:
        """{organ: the versions that learned it, oldest first}."""
        learned: dict[str, list[Version]] = {}
        for version in self.versions():
            for organ in version.organs:
                learned.setdefault(organ, []).append(version)
        return learned

    def ids(self, first_id: int = 1) -> dict[str, int]:
        """Stable {organ: id}: those given in organs.json, then organs learned since, in the order they were first
        learned (ids from ``first_id`` up, never reused). Read-only; :meth:`assign_ids` records them."""
        given = self._given()
        ids = dict(given)
        next_id = max([first_id - 1, *given.values()]) + 1
        for organ in self.organs():
            if organ not in ids:
                ids[organ], next_id = next_id, next_id + 1
        return ids

    def assign_ids(self, organs: list[str] | None = None, first_id: int = 1) -> dict[str, int]:
        """Record ids for every learned organ (and ``organs``) in organs.json; returns them all."""
        with self._locked():  # label saves, infers and imports may assign at once (threads or processes)
            ids = self.ids(first_id)
            next_id = max([first_id - 1, *ids.values()]) + 1
            for organ in organs or []:
                if organ not in ids:
                    ids[organ], next_id = next_id, next_id + 1
            if ids != self._given():
                write_json(self.root / ORGANS_FILE, {"organs": ids})
            return ids

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """An exclusive lock on organs.json's read-modify-write (POSIX advisory lock on a file beside it)."""
        import fcntl

        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f".{ORGANS_FILE}.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _given(self) -> dict[str, int]:
        path = self.root / ORGANS_FILE
        if not path.is_file():
            return {}
        return {str(k): int(v) for k, v in json.loads(path.read_text()).get("organs", {}).items()}

    def resolve(self, pins: dict[str, str] | None = None) -> dict[str, Version]:
        """{organ: version to serve}: the latest good version of each learned organ, or the pinned one."""
        learned = self.organs()
        chosen = {organ: versions[-1] for organ, versions in learned.items()}
        for organ, ref in (pins or {}).items():
            if organ not in learned:
                raise InputError(f"organ {organ!r} is not in the library; learned organs: "
                                 f"{', '.join(sorted(learned)) or 'none yet'}")
            match = [v for v in learned[organ] if v.id == ref]
            if not match:
                raise InputError(f"organ {organ!r} has no version {ref!r}; its versions: "
                                 f"{', '.join(v.id for v in learned[organ])}")
            chosen[organ] = match[0]
        return chosen

    def foundation_sha256(self) -> str | None:
        """The foundation hash the library's adapters record (None before the first adapter)."""
        for version in self.versions():
            adapter = version.adapter
            if adapter:
                return str(adapter["base_sha256"])
        return None

    def entries(self) -> list[dict[str, Any]]:
        """One line per learned organ (latest version): what /info and `arena-seg adapters list` show."""
        ids, out = self.ids(), []
        for organ, versions in sorted(self.organs().items()):
            latest = versions[-1]
            m, adapter = latest.manifest, latest.adapter
            ranks = list((m.get("effective_ranks") or {}).values())
            size = sum(p.stat().st_size for p in latest.folder.glob("adapter.*"))
            out.append({"organ": organ, "id": ids[organ], "version": latest.id,
                        "versions": [v.id for v in versions], "shots": len(m.get("data_ids", [])),
                        "dice": m.get("best_metric", m.get("best_val_dice")),
                        "metric": m.get("metric", "validation Dice"), "method": m.get("method"),
                        "rank": round(sum(ranks) / len(ranks), 2) if ranks else None,
                        "adapter_bytes": size if adapter else None})
        return out

    # ---- moving one organ's adapter between servers -------------------------------------------------------------
    def export(self, organ: str, out: str | Path, version: str | None = None) -> Path:
        """Copy the version (latest, or ``version``) that serves ``organ`` to the new folder ``out``."""
        chosen = self.resolve({organ: version} if version else None).get(organ)
        if chosen is None:
            raise InputError(f"organ {organ!r} is not in the library; learned organs: "
                             f"{', '.join(sorted(self.organs())) or 'none yet'}")
        with staged_output(out) as stage:
            shutil.copytree(chosen.folder, stage, dirs_exist_ok=True)
            write_json(stage / "export.json", {"organ": organ, "version": chosen.id, "organs": chosen.organs})
        return Path(out)

    def import_(self, folder: str | Path, foundation_sha256: str | None = None) -> Version:
        """Add an exported version as this library's next version; refused (nothing written) when it was trained
        on another foundation than this library's adapters record, or than ``foundation_sha256`` (the served
        foundation's, which also checks the first import into a library without adapters).

        The version is claimed, written and published as the app's version store does it (``versions/.stage-vNNN``
        made atomically, renamed to ``vNNN`` when complete, then ``latest`` moved), so a server running on this
        library serves the organ from its next request (it reads the library on every request) and a training run
        finishing at the same time never gets the same id."""
        folder = Path(folder)
        if not (folder / "manifest.json").is_file() or not (folder / "network" / "network.json").is_file():
            raise InputError(f"{folder} is not an exported adapter (manifest.json and network/ are needed)")
        incoming = Version("import", folder, json.loads((folder / "manifest.json").read_text()))
        if not incoming.organs:
            raise InputError(f"{folder}: its manifest names no organ")
        check_foundation(incoming, foundation_sha256)
        check_foundation(incoming, self.foundation_sha256())
        self.assign_ids(list(incoming.organs))  # ids first: the version is served with them once it appears
        version, stage = self._claim()
        try:
            shutil.copytree(folder, stage, dirs_exist_ok=True)
            (stage / "export.json").unlink(missing_ok=True)
            write_json(stage / "manifest.json", {**incoming.manifest, "version": version,
                                                 "imported_from": str(folder)}, default=str)
            (stage / _OWNER).unlink(missing_ok=True)
            os.rename(stage, self.versions_dir / version)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
        self._point_latest(version)
        return next(v for v in self.versions() if v.id == version)

    def _claim(self) -> tuple[str, Path]:
        return claim_version(self.versions_dir)

    def _point_latest(self, version: str) -> None:
        point_latest(self.root, version)


def claim_version(versions_dir: Path) -> tuple[str, Path]:
    """(next version id, its stage folder ``versions_dir/.stage-vNNN``), claimed with an atomic mkdir, so two
    writers (a training run, an import, another server on the same folder) never get the same id; the stage
    records its writer's pid (``.owner``) so a running server leaves a live writer's stage alone."""
    versions_dir.mkdir(parents=True, exist_ok=True)
    names = [p.name.removeprefix(_STAGE) for p in versions_dir.iterdir()]
    n = max([int(m.group(1)) for m in map(VERSION.fullmatch, names) if m], default=0) + 1
    while True:
        version, stage = f"v{n:03d}", versions_dir / f"{_STAGE}v{n:03d}"
        try:
            stage.mkdir()
        except FileExistsError:
            n += 1
            continue
        if (versions_dir / version).exists():
            stage.rmdir()
            n += 1
            continue
        (stage / _OWNER).write_text(str(os.getpid()))
        return version, stage


def point_latest(root: Path, version: str) -> None:
    """``root/latest`` → ``versions/<version>``, replaced atomically: readers see the old or the new target."""
    link, tmp = root / "latest", root / f".latest.{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(Path("versions") / version, tmp)
    os.replace(tmp, link)


def check_foundation(version: Version, foundation_sha256: str | None) -> None:
    """Refuse a version whose adapter was trained on another foundation network than ``foundation_sha256``."""
    adapter = version.adapter
    if foundation_sha256 and adapter and adapter.get("base_sha256") != foundation_sha256:
        raise InputError(f"adapter {version.folder} was trained on another foundation network (weights sha256 "
                         f"{str(adapter.get('base_sha256'))[:12]}…, this library's is {foundation_sha256[:12]}…); "
                         "adapters only work on the foundation they were trained on")
