"""The geometry check of a stack of CT slices: one regular, untilted stack, or the reason it is not."""

from __future__ import annotations

import numpy as np

from arena_seg.data.dicom_errors import SeriesError

__all__ = ["series_geometry"]


def _floats(ds, keyword: str, n: int, name: str) -> np.ndarray:
    value = ds.get(keyword)
    if value is None or len(value) != n:
        raise SeriesError(f"{name} has no valid {keyword}; the slice geometry is unknown")
    return np.asarray([float(v) for v in value], dtype=np.float64)


def series_geometry(headers: list, names: list[str], min_slices: int = 3) -> tuple[list[int], np.ndarray]:
    """Check that slices form one regular, untilted stack; returns the slice order and the LPS affine.

    Raises :class:`SeriesError` for too few slices, mixed-size images, mixed orientations or pixel
    spacings, duplicate or missing slices, irregular spacing and gantry tilt.
    """
    n = len(headers)
    sizes = {(int(ds.Rows), int(ds.Columns)) for ds in headers}
    if len(sizes) > 1:
        raise SeriesError(f"slices differ in size ({', '.join(f'{r}x{c}' for r, c in sorted(sizes))})")
    iop = np.stack([_floats(ds, "ImageOrientationPatient", 6, nm) for ds, nm in zip(headers, names, strict=True)])
    if np.abs(iop - iop[0]).max() > 1e-3:
        count = len({tuple(np.round(o, 3)) for o in iop})
        raise SeriesError(f"mixed orientations ({count} different ImageOrientationPatient values in one series)")
    pix = np.stack([_floats(ds, "PixelSpacing", 2, nm) for ds, nm in zip(headers, names, strict=True)])
    if np.abs(pix - pix[0]).max() > 1e-4:
        raise SeriesError("mixed pixel spacings in one series")
    if np.any(pix[0] <= 0):
        raise SeriesError(f"invalid PixelSpacing {pix[0].tolist()}")
    if n < min_slices:
        raise SeriesError(f"too few slices ({n}; at least {min_slices} needed)")
    row, col = iop[0, :3], iop[0, 3:]
    row, col = row / np.linalg.norm(row), col / np.linalg.norm(col)
    if abs(float(row @ col)) > 1e-3:
        raise SeriesError("ImageOrientationPatient is not orthogonal")
    normal = np.cross(row, col)
    pos = np.stack([_floats(ds, "ImagePositionPatient", 3, nm) for ds, nm in zip(headers, names, strict=True)])
    dist = pos @ normal
    order = [int(i) for i in np.argsort(dist, kind="stable")]
    gaps = np.diff(dist[order])
    if n == 1:  # a single slice (min_slices=1): thickness from the header
        gaps = np.array([float(headers[0].get("SpacingBetweenSlices") or headers[0].get("SliceThickness") or 1.0)])
    if np.any(gaps < 1e-3):
        k = int(np.argmax(gaps < 1e-3))
        raise SeriesError(f"duplicate slices: {int(np.sum(gaps < 1e-3)) + 1} slices share positions (e.g. "
                          f"{names[order[k]]} and {names[order[k + 1]]} at {dist[order[k]]:.2f} mm)")
    step = float(np.median(gaps))
    if np.abs(gaps - step).max() > max(0.02 * step, 0.01):
        ratio = gaps / step
        big = np.flatnonzero(ratio > 1.5)
        if big.size and np.allclose(ratio[big], np.round(ratio[big]), atol=0.05) and np.all(ratio > 0.98):
            k = int(big[0])
            missing = int(np.round(ratio[big]).sum() - big.size)
            raise SeriesError(f"missing slices: about {missing} missing (gap of {gaps[k]:.2f} mm after slice at "
                              f"{dist[order[k]]:.2f} mm, spacing {step:.2f} mm)")
        raise SeriesError(f"irregular slice spacing ({gaps.min():.3g} to {gaps.max():.3g} mm between slices)")
    span = pos[order[-1]] - pos[order[0]] if n > 1 else normal
    cos = float(np.clip(span @ normal / np.linalg.norm(span), -1.0, 1.0))
    tilt = float(np.degrees(np.arccos(cos)))
    if tilt > 0.05:
        raise SeriesError(f"gantry tilt of {tilt:.2f}° (slices are sheared); resample the series without tilt first")
    affine = np.eye(4)
    affine[:3, 0] = row * pix[0, 1]  # column index moves along the row direction by the column spacing
    affine[:3, 1] = col * pix[0, 0]
    affine[:3, 2] = normal * (float(dist[order[-1]] - dist[order[0]]) / (n - 1) if n > 1 else float(gaps[0]))
    affine[:3, 3] = pos[order[0]]
    return order, affine
