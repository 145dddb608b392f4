"""Which images of a series make its volume, as scanners and exports mix them.

Localizers (ImageType LOCALIZER) and stray images of another orientation or size (a scout, a reformat) are left
out; exact copies (same position, same pixels) are read once; when the images do not form one regular stack
but one acquisition of them does (two acquisitions over the same positions, or a second stack elsewhere), the
largest such acquisition is taken. Each decision is returned as a note for the report.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import groupby

import numpy as np

from arena_seg.data.dicom_errors import SeriesError
from arena_seg.data.dicom_group import geometry_of, is_localizer

__all__ = ["choose_stack"]

# attributes that tell acquisitions (or stacks, or time points) of one series apart, in the order tried
_ACQUISITION_KEYS = ("AcquisitionNumber", "StackID", "TemporalPositionIndex", "AcquisitionTime")
Geometry = Callable[[list, list[str], int], tuple[list[int], np.ndarray]]


def _same_geometry(a, b) -> bool:
    (oa, sa), (ob, sb) = geometry_of(a), geometry_of(b)
    if (int(a.Rows), int(a.Columns)) != (int(b.Rows), int(b.Columns)) or len(oa) != len(ob) or len(sa) != len(sb):
        return False
    return np.allclose(oa, ob, atol=1e-3) and np.allclose(sa, sb, atol=1e-4)


def _partition(headers: list, idx: list[int]) -> list[list[int]]:
    """Images of one size, orientation and pixel spacing together, largest group first (ties: file order)."""
    parts: list[list[int]] = []
    for i in idx:
        part = next((p for p in parts if _same_geometry(headers[p[0]], headers[i])), None)
        if part is None:
            parts.append([i])
        else:
            part.append(i)
    return sorted(parts, key=len, reverse=True)


def _drop_copies(headers: list, idx: list[int], plane: Callable[[int], np.ndarray]) -> list[int]:
    """Leave out images at the position of an earlier one with the same pixels (copies under other names/UIDs)."""
    def position(i: int) -> tuple:
        return tuple(np.round([float(v) for v in headers[i].get("ImagePositionPatient") or ()], 2))

    keep = []
    for _, same in groupby(sorted(idx, key=position), key=position):
        same = list(same)
        kept: list[int] = []
        for i in same:
            if not any(np.array_equal(plane(i), plane(j)) for j in kept):
                kept.append(i)
        keep += kept
    return sorted(keep)


def _natural(value: str) -> tuple:
    try:
        return 0, float(value), ""
    except ValueError:
        return 1, 0.0, value


def _acquisitions(headers: list, idx: list[int]) -> tuple[str, dict[str, list[int]]] | None:
    """The first attribute that splits ``idx`` into several groups, and the groups."""
    for key in _ACQUISITION_KEYS:
        groups: dict[str, list[int]] = {}
        for i in idx:
            groups.setdefault(str(headers[i].get(key, "") or ""), []).append(i)
        if len(groups) > 1:  # in natural order (acquisition 2 before 10), so that ties go to the first
            return key, dict(sorted(groups.items(), key=lambda kv: _natural(kv[0])))
    return None


def choose_stack(headers: list, names: list[str], plane: Callable[[int], np.ndarray], geometry: Geometry,
                 min_slices: int) -> tuple[list[int], list[int], np.ndarray, list[str]]:
    """The images of ``headers`` that form the series' volume.

    ``plane(i)``: image i's pixels (only called for images sharing a position); ``geometry``: the stack check
    (:func:`~arena_seg.data.dicom_read.series_geometry`). Returns (chosen indices, their slice order as indices
    into the chosen list, LPS affine, notes); raises the check's :class:`SeriesError` when no stack passes.
    """
    notes: list[str] = []
    idx = [i for i in range(len(headers)) if not is_localizer(headers[i])]
    if not idx:
        raise SeriesError("localizer (scout) images only, not a volume")
    if len(idx) < len(headers):
        notes.append(f"{len(headers) - len(idx)} localizer image(s) left out (ImageType LOCALIZER)")
    parts = _partition(headers, idx)
    if len(parts) > 1 and len(parts[0]) >= min_slices and len(parts[0]) > len(parts[1]):
        rest = len(idx) - len(parts[0])
        notes.append(f"{rest} image(s) of another orientation, size or pixel spacing left out (scout or reformat; "
                     f"e.g. {names[parts[1][0]]})")
        idx = parts[0]
    unique = _drop_copies(headers, idx, plane)
    if len(unique) < len(idx):
        notes.append(f"{len(idx) - len(unique)} duplicate image(s) left out (same position and pixels as another)")
    idx = unique
    try:
        order, lps = geometry([headers[i] for i in idx], [names[i] for i in idx], min_slices)
        return idx, order, lps, notes
    except SeriesError as whole:
        split = _acquisitions(headers, idx)
        if split is None:
            raise
        key, groups = split
        good = []
        for value, members in groups.items():
            try:
                good.append((len(members), value, members,
                             geometry([headers[i] for i in members], [names[i] for i in members], min_slices)))
            except SeriesError:
                continue
        if not good:
            raise whole from None
        count, value, members, (order, lps) = max(good, key=lambda g: g[0])  # first of the largest
        sizes = ", ".join(f"{v or 'none'}: {len(m)}" for v, m in groups.items())
        notes.append(f"{len(groups)} acquisitions in one series ({key} {sizes} images; together: {whole}); "
                     f"{key} {value or 'none'} taken ({count} slices), the others left out")
        return members, order, lps, notes
