"""Labels sent by clients, checked against their image and stored in one form the trainer can use directly.

Clients send label maps in several forms:

* Slicer's labelmap ``.nrrd`` (or any NIfTI) whose voxel values are *segment indices*, named by the request's
  ``label_info`` ([{"name", "idx"}]): the organ the clinician drew may be value 2 in the file;
* Slicer's ``.seg.nrrd`` (overlapping segments allowed): one or more layers, each segment named in the header
  (``SegmentN_Name``, ``SegmentN_LabelValue``, ``SegmentN_Layer``); the header is used first, ``label_info`` else;
* a NIfTI/NRRD without ``label_info``: its ids are the configured organs 1..n (``--conf labels`` order).

Whatever came in, the stored label is a uint8 NIfTI on the image's grid (same shape and affine) with the
configured organs as ids 1..n; other segments are dropped. Where organs overlap, the later organ wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from arena_seg.data.orientation import lps_to_ras
from arena_seg.data.volumes import Volume, check_label, read_volume
from arena_seg.errors import InputError
from lib.conf import norm_name


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


def normalise_label(image: Volume, label: LabelFile, organs: list[str], label_info: object = None
                    ) -> tuple[np.ndarray, dict]:
    """The label as uint8 ids 1..n of ``organs`` on the image's grid, and what was found (for the label's info).

    Raises :class:`InputError` when the label does not fit the image, names none of the organs or is empty.
    """
    if not organs:
        raise InputError("this server learns no organs: start it with --conf labels NAME[,NAME...]")
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
    wanted = {norm_name(o): o for o in organs}
    sources: dict[str, list[tuple[int, int]]] = {}
    if label.segments:
        source = "seg.nrrd header"
        named = label.segments
    elif label_info:
        source = "label_info"
        named = {name: (0, value) for name, value in parse_label_info(label_info).items()}
    else:
        source = "ids"
        present = sorted(set(np.unique(layers[0]).tolist()) - {0})
        extra = [v for v in present if v > len(organs)]
        if extra:
            raise InputError(f"label {label.path.name} holds ids {present} but this server learns {len(organs)} "
                             f"organ(s) {list(organs)} as ids 1..{len(organs)}; send label_info "
                             "[{'name', 'idx'}] naming the organ of each value, or relabel")
        named = {organ: (0, i + 1) for i, organ in enumerate(organs)}
    for name, (layer, value) in named.items():
        organ = wanted.get(norm_name(name))
        if organ is not None:
            if not 0 <= layer < len(layers) or value <= 0:
                raise InputError(f"segment {name!r}: layer {layer} / value {value} is not in the label file")
            sources.setdefault(organ, []).append((layer, value))
    if not sources:
        raise InputError(f"label names {sorted(named)} but this server learns {list(organs)}; name a segment "
                         f"after one of them (label_info or the segment's name)")
    out = np.zeros(image.shape, dtype=np.uint8)
    counts: dict[str, int] = {}
    for i, organ in enumerate(organs):
        for layer, value in sources.get(organ, []):
            out[layers[layer] == value] = i + 1
    for i, organ in enumerate(organs):
        counts[organ] = int((out == i + 1).sum())
    if not any(counts.values()):
        raise InputError(f"label {label.path.name} is empty for {list(sources)}: draw the organ before saving")
    info = {"arena_labels": {o: i + 1 for i, o in enumerate(organs)}, "arena_voxels": counts, "arena_source": source}
    return out, info
