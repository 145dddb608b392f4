"""Labels sent by clients, checked against their image and stored in one form the trainer can use directly.

Clients send label maps in several forms:

* Slicer's labelmap ``.nrrd`` (or any NIfTI) whose voxel values are *segment indices*, named by the request's
  ``label_info`` ([{"name", "idx"}]): the organ the clinician drew may be value 2 in the file;
* Slicer's ``.seg.nrrd`` (overlapping segments allowed): one or more layers, each segment named in the header
  (``SegmentN_Name``, ``SegmentN_LabelValue``, ``SegmentN_Layer``); the header is used first, ``label_info`` else;
* a NIfTI/NRRD without ``label_info``: its ids are the configured organs 1..n (``--conf labels`` order).

Whatever came in, the stored label is a uint8 NIfTI on the image's grid (same shape and affine) whose values are
the organs' ids in the server's organ registry (:mod:`lib.organs`: ``--conf labels`` 1..n, then organs that
labels added); segments that are no organ are dropped. Where organs overlap, the one with the higher id wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from arena_seg.data.orientation import lps_to_ras
from arena_seg.data.volumes import Volume, check_label, read_volume
from arena_seg.errors import InputError
from lib.organs import OrganRegistry


@dataclass
class LabelFile:
    """Layers (each X, Y, Z) of a label file, its RAS affine and, for .seg.nrrd, {segment name: (layer, value)}."""

    layers: list[np.ndarray]
    affine: np.ndarray
    path: Path
    segments: dict[str, tuple[int, int]] | None = None


def read_label(path: str | Path) -> LabelFile:
    """Read a label map (NIfTI, NRRD, MHA) or a Slicer segmentation (.seg.nrrd, 3-D or layered 4-D)."""
    path = Path(path)
    if path.name.endswith(".nrrd") and path.is_file():
        import nrrd

        try:
            header = nrrd.read_header(str(path))
        except Exception as exc:
            raise InputError(f"label {path.name} is not a readable NRRD file ({exc})") from exc
        if "Segment0_Name" in header or int(header.get("dimension", 3)) == 4:
            return _read_seg_nrrd(path)
    volume = read_volume(path, "label")
    return LabelFile(layers=[volume.array], affine=volume.affine, path=path)


def _read_seg_nrrd(path: Path) -> LabelFile:
    import nrrd

    try:
        data, header = nrrd.read(str(path))
    except Exception as exc:
        raise InputError(f"label {path.name} is not a readable NRRD file ({exc})") from exc
    directions = np.asarray(header.get("space directions"), dtype=object)
    spatial = [i for i, row in enumerate(directions) if row is not None and not np.any(np.isnan(np.asarray(
        row, dtype=float)))]
    if len(spatial) != 3 or data.ndim not in (3, 4):
        raise InputError(f"label {path.name} has {data.ndim} axes with {len(spatial)} spatial ones; a 3-D "
                         "segmentation is needed")
    if data.ndim == 4:
        list_axis = next(i for i in range(4) if i not in spatial)
        layers = [np.take(data, k, axis=list_axis) for k in range(data.shape[list_axis])]
    else:
        layers = [data]
    affine = np.eye(4)
    affine[:3, :3] = np.stack([np.asarray(directions[i], dtype=float) for i in spatial], axis=1)
    affine[:3, 3] = np.asarray(header.get("space origin", np.zeros(3)), dtype=float)
    space = str(header.get("space", "left-posterior-superior")).lower()
    if space in ("left-posterior-superior", "lps"):
        affine = lps_to_ras(affine)
    segments: dict[str, tuple[int, int]] = {}
    i = 0
    while f"Segment{i}_Name" in header:
        layer = int(header.get(f"Segment{i}_Layer", 0))
        value = int(header.get(f"Segment{i}_LabelValue", 1))
        segments[str(header[f"Segment{i}_Name"])] = (layer, value)
        i += 1
    return LabelFile(layers=layers, affine=affine, path=path, segments=segments or None)


def parse_label_info(label_info: object) -> dict[str, int]:
    """Slicer's ``label_info`` ([{"name": ..., "idx": ...}], "id" also accepted) as {name: value in the file}."""
    if label_info is None:
        return {}
    if not isinstance(label_info, list):
        raise InputError(f"label_info must be a list of {{'name', 'idx'}} objects, got {type(label_info).__name__}")
    out: dict[str, int] = {}
    for item in label_info:
        value = item.get("idx", item.get("id")) if isinstance(item, dict) else None
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or value is None:
            raise InputError(f"label_info entry {item!r}: give {{'name': organ, 'idx': value in the label file}}")
        try:
            out[item["name"]] = int(value)
        except (TypeError, ValueError):
            raise InputError(f"label_info entry {item!r}: idx must be an integer") from None
    return out


def on_image_grid(array: np.ndarray, affine: np.ndarray, image: Volume, path: Path, cropped: bool = False
                  ) -> np.ndarray:
    """``array`` on the image's voxel grid. A ``cropped`` one (a .seg.nrrd: Slicer may crop a segmentation to its
    extent) is pasted in when it is an aligned sub-box of that grid. Anything else must match the image exactly and
    is refused with check_label's message."""
    label = Volume(array=array, affine=affine, path=path)
    if label.shape == image.shape and np.allclose(affine, image.affine, atol=1e-3):
        return array
    if cropped and np.allclose(affine[:3, :3], image.affine[:3, :3], atol=1e-4):
        start = (np.linalg.inv(image.affine) @ np.append(affine[:3, 3], 1.0))[:3]
        offset = np.round(start).astype(int)
        stop = offset + np.asarray(array.shape)
        if np.allclose(start, offset, atol=1e-3) and np.all(offset >= 0) and np.all(stop <= image.shape):
            full = np.zeros(image.shape, dtype=array.dtype)
            full[tuple(slice(a, b) for a, b in zip(offset, stop, strict=True))] = array
            return full
    check_label(image, label)  # raises with the shape/affine message
    return array


def normalise_label(image: Volume, label: LabelFile, organs: OrganRegistry, label_info: object = None
                    ) -> tuple[np.ndarray, dict]:
    """The label as uint8 organ ids (``organs``' registry) on the image's grid, and what was found (the label's info).

    Segments are named by the .seg.nrrd header, else by ``label_info``, else a value v is the v-th configured organ.
    A name that is not a known organ becomes a new one when it has voxels and qualifies (:mod:`lib.organs`); its id
    is recorded only once the label is known good. Raises :class:`InputError` when the label does not fit the
    image, names no organ, or is empty.
    """
    layers, cropped = [], label.segments is not None
    for layer in label.layers:
        values = np.asarray(layer)
        if not np.issubdtype(values.dtype, np.integer):
            if not np.all(np.isfinite(values)) or not np.allclose(values, np.round(values)):
                raise InputError(f"label {label.path.name} holds non-integer values; a label map is needed")
            values = np.round(values)
        if values.size and values.min() < 0:
            raise InputError(f"label {label.path.name} holds negative values ({int(values.min())}); label maps hold "
                             "0 for background and positive segment values")
        layers.append(on_image_grid(values.astype(np.int64), label.affine, image, label.path, cropped))
    known = organs.ids()
    source, named = _named_segments(label, layers, organs.configured, label_info)
    sources: dict[str, list[tuple[int, int]]] = {}
    for name, (layer, value) in named.items():
        organ = organs.organ_for(name, known)
        if organ is None:
            continue
        if not 0 <= layer < len(layers) or value <= 0:
            raise InputError(f"segment {name!r}: layer {layer} / value {value} is not in the label file")
        if organ not in known and not np.any(layers[layer] == value):
            continue  # an empty segment does not make a new organ
        sources.setdefault(organ, []).append((layer, value))
    if not sources:
        raise InputError(f"label names {sorted(named)} but none of them is an organ this server learns or can learn "
                         f"(known: {organs.describe(known)}); name a segment after the organ you drew (label_info "
                         "or the segment's name; the foundation's own organs and names such as Segment_1 do not count)")
    if not any(np.any(layers[layer] == value) for found in sources.values() for layer, value in found):
        raise InputError(f"label {label.path.name} is empty for {list(sources)}: draw the organ before saving")
    ids = organs.assign(sources)  # only now: a refused label records no new organ
    out = np.zeros(image.shape, dtype=np.uint8)
    for organ in sorted(sources, key=ids.get):  # on overlap the organ with the higher id wins
        for layer, value in sources[organ]:
            out[layers[layer] == value] = ids[organ]
    counts = {organ: int((out == ids[organ]).sum()) for organ in sources}
    return out, {"arena_labels": ids, "arena_voxels": counts, "arena_source": source}


def _named_segments(label: LabelFile, layers: list[np.ndarray], configured: tuple[str, ...], label_info: object
                    ) -> tuple[str, dict[str, tuple[int, int]]]:
    """(source, {segment name: (layer, value)}) of a label file."""
    if label.segments:
        return "seg.nrrd header", label.segments
    if label_info:
        return "label_info", {name: (0, value) for name, value in parse_label_info(label_info).items()}
    if not configured:
        raise InputError(f"label {label.path.name} names no organ: send label_info [{{'name', 'idx'}}] naming the "
                         "organ of each value (this server has no --conf labels to number them by)")
    present = sorted(set(np.unique(layers[0]).tolist()) - {0})
    extra = [v for v in present if v > len(configured)]
    if extra:
        raise InputError(f"label {label.path.name} holds ids {present} but this server learns {len(configured)} "
                         f"organ(s) {list(configured)} as ids 1..{len(configured)}; send label_info "
                         "[{'name', 'idx'}] naming the organ of each value, or relabel")
    return "ids", {organ: (0, i + 1) for i, organ in enumerate(configured)}
