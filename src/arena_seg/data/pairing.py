"""Labelled volumes given on a command line: pairing images with labels, and ``NAME[=ID]`` organ options."""

from __future__ import annotations

import json
from pathlib import Path

from arena_seg.data.volumes import VOLUME_SUFFIXES
from arena_seg.errors import InputError


def volume_stem(path: Path) -> str:
    name = path.name
    for suffix in sorted(VOLUME_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def list_volumes(items: list[str], what: str) -> list[Path]:
    """Expand folders into their volume files (sorted); keep files as given."""
    out: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.name.endswith(VOLUME_SUFFIXES))
            if not found:
                raise InputError(f"{what} folder {path} holds no .nii.gz/.nrrd/.mha volumes")
            out.extend(found)
        elif path.is_file():
            out.append(path)
        else:
            raise InputError(f"{what} {path} does not exist")
    return out


def pair_volumes(images: list[str], labels: list[str]) -> list[dict]:
    """Pair images with labels by file name (folders) or by position (file lists of equal length)."""
    image_files, label_files = list_volumes(images, "image"), list_volumes(labels, "label")
    by_stem = {volume_stem(p): p for p in label_files}
    if all(volume_stem(p) in by_stem for p in image_files):
        return [{"image": str(p), "label": str(by_stem[volume_stem(p)]), "id": volume_stem(p)} for p in image_files]
    if len(image_files) == len(label_files):
        return [{"image": str(i), "label": str(lab), "id": volume_stem(i)}
                for i, lab in zip(image_files, label_files, strict=True)]
    missing = [p.name for p in image_files if volume_stem(p) not in by_stem][:3]
    raise InputError(f"cannot pair {len(image_files)} images with {len(label_files)} labels; no label named like "
                     f"{', '.join(missing)}")


def parse_organs(specs: list[str], labels: list[str]) -> dict[str, int]:
    """``NAME[=ID]`` options to {name: id in the label files}; a bare NAME looks its id up in labels.json."""
    known = _labels_json(labels)
    organs: dict[str, int] = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        name = name.strip()
        if not name:
            raise InputError(f"--label {spec!r}: give NAME or NAME=ID")
        if sep:
            try:
                organs[name] = int(value)
            except ValueError:
                raise InputError(f"--label {spec!r}: ID must be an integer") from None
        elif name in known:
            organs[name] = int(known[name])
        else:
            raise InputError(f"--label {name}: no labels.json beside the labels names it; give {name}=ID")
        if organs[name] <= 0:
            raise InputError(f"--label {spec!r}: ID must be ≥ 1 (0 is background)")
    if len(set(organs.values())) != len(organs):
        raise InputError("--label: two organs share one id")
    return organs


def _labels_json(labels: list[str]) -> dict[str, int]:
    for item in labels:
        path = Path(item)
        folder = path if path.is_dir() else path.parent
        for candidate in (folder / "labels.json", folder.parent / "labels.json"):
            if candidate.is_file():
                try:
                    return {str(k): int(v) for k, v in json.loads(candidate.read_text()).items()}
                except (ValueError, AttributeError) as exc:
                    raise InputError(f"{candidate} is not a JSON object of organ ids ({exc})") from exc
    return {}
