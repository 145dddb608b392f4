"""What a batch run works on: DICOM series (grouped by SeriesInstanceUID, or by folder and stack identity where the
files have no UIDs) and NIfTI files found under inputs."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from arena_seg.errors import InputError

_NIFTI = (".nii.gz", ".nii")


@dataclass
class SeriesItem:
    """One unit of work: a DICOM series (its files) or a NIfTI file; ``key`` names its output folder."""

    key: str
    kind: Literal["dicom", "nifti", "file"]  # "file": an input that cannot be read, reported with ``error``
    files: list[str]
    folder: str
    uid: str = ""
    modality: str = ""
    description: str = ""
    error: str = ""  # set for a file that looks like DICOM but cannot be read
    skip: str = ""  # set for a series that is no volume (localizers only): skipped with this reason
    notes: list[str] = field(default_factory=list)  # warnings for the report (e.g. grouped without UIDs)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "series"


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve())) or "."
    except ValueError:
        return str(path.resolve())


def collect_inputs(inputs: Sequence[str | Path], exclude: Sequence[str | Path] = ()) -> list[SeriesItem]:
    """Series and NIfTI files under the given folders/files, sorted by key (the order every rank shares)."""
    from arena_seg.data.dicom_read import find_dicom_series

    items: list[SeriesItem] = []
    for given in inputs:
        root = Path(given)
        if not root.exists():
            raise InputError(f"input {root} does not exist")
        base = root if root.is_dir() else root.parent
        if root.is_file() and root.name.endswith(_NIFTI):
            niftis, (series, unreadable) = [root], ([], [])
        elif root.is_file():
            series, unreadable = find_dicom_series(root.parent, exclude=exclude)
            series = [s for s in series if root in s.files]
            niftis = []
        else:
            series, unreadable = find_dicom_series(root, exclude=exclude)
            skip = [Path(e).resolve() for e in exclude]
            niftis = sorted(p for p in root.rglob("*") if p.name.endswith(_NIFTI) and not p.name.startswith(".")
                            and not any(p.resolve().is_relative_to(s) for s in skip))
        for s in series:
            folder = _rel(s.folder, base)
            # s.key is the UID, or a hash of the folder and stack identity for series without one: stable either way
            key = f"{_slug(folder if folder != '.' else base.name)}_{hashlib.sha1(s.key.encode()).hexdigest()[:8]}"
            items.append(SeriesItem(key, "dicom", [str(f) for f in s.files], folder, s.uid, s.modality,
                                    s.description, skip=s.skip, notes=list(s.notes)))
        for p in niftis:
            rel = _rel(p, base)
            items.append(SeriesItem(_slug(re.sub(r"\.nii(\.gz)?$", "", rel)), "nifti", [str(p)], rel))
        for p, why in unreadable:
            items.append(SeriesItem(f"unreadable_{_slug(_rel(p, base))}", "file", [str(p)], _rel(p, base),
                                    error=f"not readable as DICOM ({why})"))
    seen: dict[str, int] = {}
    for item in sorted(items, key=lambda i: (i.key, i.files[0])):
        n = seen.setdefault(item.key, 0)
        seen[item.key] += 1
        if n:
            item.key = f"{item.key}_{n}"
    return sorted(items, key=lambda i: i.key)


