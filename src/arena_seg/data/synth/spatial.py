"""Geometry of a synthetic scan: the body wall around a label map, random affine + elastic warps, field of view.

Arrays are (X, Y, Z) in RAS voxel order (X to the patient's left, Y anterior, Z superior), the label map's grid.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

#: tissue-map ids of the body the label map does not label (above any class id of a label map)
VISCERA, WALL_MUSCLE, SUBCUT_FAT, SKIN = 1001, 1002, 1003, 1004


def body_layers(label: np.ndarray, spacing: tuple[float, float, float], rng: np.random.Generator) -> np.ndarray:
    """The tissue map: ``label`` with the unlabelled body filled in, (X, Y, Z) int16.

    The labelled structures' outline on each axial slice (holes filled, convex hull) is the body cavity; around
    it go a muscle wall (3-9 mm), subcutaneous fat (6-36 mm) and skin (one voxel). Unlabelled voxels inside the
    cavity are :data:`VISCERA`; outside the skin stays 0 (air).
    """
    cavity = np.zeros(label.shape, bool)
    for z in range(label.shape[2]):
        sl = label[:, :, z] > 0
        if sl.sum() > 8:
            cavity[:, :, z] = convex_hull_2d(ndimage.binary_fill_holes(sl))
    # distance outside the cavity, in mm within each slice (z spacing made huge: no spread across slices)
    dist = ndimage.distance_transform_edt(~cavity, sampling=(spacing[0], spacing[1], 1e6))
    muscle = rng.uniform(3, 9)
    fat = muscle + rng.uniform(6, 36)
    skin = fat + max(spacing[0], spacing[1])
    out = np.where(label > 0, label, 0).astype(np.int16)
    free = label == 0
    out[free & cavity] = VISCERA
    out[free & ~cavity & (dist <= muscle)] = WALL_MUSCLE
    out[free & (dist > muscle) & (dist <= fat)] = SUBCUT_FAT
    out[free & (dist > fat) & (dist <= skin)] = SKIN
    return out


def convex_hull_2d(mask: np.ndarray) -> np.ndarray:
    """The convex hull of a 2-D mask's pixel centres, filled (the mask itself when it has no area)."""
    from scipy.spatial import ConvexHull, Delaunay, QhullError

    pts = np.argwhere(mask)
    try:
        hull = Delaunay(pts[ConvexHull(pts).vertices])
    except (QhullError, ValueError):  # fewer than 3 points, or all on one line
        return mask.copy()
    lo, hi = pts.min(0), pts.max(0) + 1
    grid = np.stack(np.meshgrid(np.arange(lo[0], hi[0]), np.arange(lo[1], hi[1]), indexing="ij"), -1)
    out = mask.copy()
    out[lo[0]:hi[0], lo[1]:hi[1]] |= hull.find_simplex(grid.reshape(-1, 2), tol=1e-9).reshape(grid.shape[:2]) >= 0
    return out


def random_coords(shape: tuple[int, int, int], spacing: tuple[float, float, float], rng: np.random.Generator,
                  rotate_deg: float = 10.0, scale: tuple[float, float] = (0.85, 1.15), shift_mm: float = 12.0,
                  elastic_mm: float = 8.0, grid: int = 5) -> np.ndarray:
    """Where each output voxel samples the input: (3, X, Y, Z) float32 voxel coordinates.

    An affine (rotation up to ``rotate_deg`` about each axis, isotropic scale in ``scale`` times ±5 % per axis,
    shift up to ``shift_mm``) about the volume's centre, plus a smooth elastic field (``grid``³ control points,
    displacement std ``elastic_mm``, cubic-smooth between them).
    """
    sp = np.asarray(spacing, float)
    a = np.deg2rad(rng.uniform(-rotate_deg, rotate_deg, 3))
    rx = np.array([[1, 0, 0], [0, np.cos(a[0]), -np.sin(a[0])], [0, np.sin(a[0]), np.cos(a[0])]])
    ry = np.array([[np.cos(a[1]), 0, np.sin(a[1])], [0, 1, 0], [-np.sin(a[1]), 0, np.cos(a[1])]])
    rz = np.array([[np.cos(a[2]), -np.sin(a[2]), 0], [np.sin(a[2]), np.cos(a[2]), 0], [0, 0, 1]])
    s = rng.uniform(*scale) * rng.uniform(0.95, 1.05, 3)
    # in mm so rotations stay rigid on anisotropic grids: out mm → in mm = R · diag(1/s) · (x - c) + c + t
    m = rx @ ry @ rz @ np.diag(1.0 / s)
    centre = (np.asarray(shape, float) - 1) / 2 * sp
    shift = rng.uniform(-shift_mm, shift_mm, 3)
    idx = np.indices(shape, dtype=np.float32).reshape(3, -1) * sp[:, None].astype(np.float32)
    mm = (m.astype(np.float32) @ (idx - centre[:, None].astype(np.float32))) + (centre + shift)[:, None]
    coords = (mm / sp[:, None]).reshape(3, *shape).astype(np.float32)
    if elastic_mm > 0:
        ctrl = torch.from_numpy(rng.normal(0, elastic_mm, (1, 3, grid, grid, grid)).astype(np.float32))
        field = torch.nn.functional.interpolate(ctrl, size=tuple(shape), mode="trilinear", align_corners=True)[0]
        coords += field.numpy() / sp[:, None, None, None].astype(np.float32)
    return coords


def warp(volume: np.ndarray, coords: np.ndarray, order: int, fill: float) -> np.ndarray:
    """``volume`` sampled at ``coords`` (nearest for ``order`` 0, trilinear for 1), ``fill`` outside."""
    return ndimage.map_coordinates(volume, coords, order=order, mode="constant", cval=fill, prefilter=False)


def add_table(hu: np.ndarray, body: np.ndarray, rng: np.random.Generator) -> None:
    """A scanner table below the patient's back (low Y), in place: a 1-3 voxel plate, -400..+150 HU."""
    ys = np.nonzero(body.any(axis=(0, 2)))[0]
    xs = np.nonzero(body.any(axis=(1, 2)))[0]
    if not len(ys):
        return
    top = ys[0] - int(rng.integers(1, 5))
    bottom = top - int(rng.integers(1, 4))
    if bottom < 0:
        return
    half = (xs[-1] - xs[0]) * rng.uniform(0.5, 0.7)
    mid = (xs[-1] + xs[0]) / 2
    x0, x1 = max(0, int(mid - half)), min(hu.shape[0], int(mid + half))
    hu[x0:x1, bottom:top, :] = rng.uniform(-400, 150)


def add_arms(hu: np.ndarray, spacing: tuple[float, float, float], body: np.ndarray,
             rng: np.random.Generator) -> None:
    """Arms down beside the trunk, in place: muscle around a humerus, in fat and skin, the whole Z range."""
    xs = np.nonzero(body.any(axis=(1, 2)))[0]
    ys = np.nonzero(body.any(axis=(0, 2)))[0]
    if not len(xs):
        return
    gx, gy = np.meshgrid(np.arange(hu.shape[0]) * spacing[0], np.arange(hu.shape[1]) * spacing[1], indexing="ij")
    r = rng.uniform(35, 50)  # arm radius, mm
    cy = (ys[0] + ys[-1]) / 2 * spacing[1] + rng.uniform(-20, 20)
    for side in (-1, 1):
        edge = (xs[0] if side < 0 else xs[-1]) * spacing[0]
        cx = edge + side * (r + rng.uniform(5, 25))
        d = np.sqrt((gx - cx) ** 2 + (gy - cy) ** 2)
        arm = np.full(d.shape, np.nan, np.float32)
        arm[d <= r] = 40.0  # skin
        arm[d <= r - 1.5] = -100.0  # fat
        arm[d <= r * 0.75] = rng.uniform(45, 60)  # muscle
        arm[d <= r * 0.22] = 900.0  # humeral cortex
        arm[d <= r * 0.13] = 250.0  # marrow
        inside = ~np.isnan(arm)
        hu[inside] = arm[inside][:, None]  # the same cross-section on every slice


def circular_fov(hu: np.ndarray, label: np.ndarray, spacing: tuple[float, float, float],
                 rng: np.random.Generator) -> None:
    """Cut the scan to a reconstruction circle (radius 40-55 % of the wider side), in place: outside is -1024
    and unlabelled, as scanners write it (a truncated body is unlabelled where it was not imaged)."""
    nx, ny = hu.shape[:2]
    gx, gy = np.meshgrid((np.arange(nx) - (nx - 1) / 2) * spacing[0], (np.arange(ny) - (ny - 1) / 2) * spacing[1],
                         indexing="ij")
    radius = rng.uniform(0.40, 0.55) * max(nx * spacing[0], ny * spacing[1])
    outside = np.sqrt(gx**2 + gy**2) > radius
    hu[outside] = -1024
    label[outside] = 0


def crop_z(shape: tuple[int, int, int], rng: np.random.Generator, keep: tuple[float, float] = (0.5, 1.0)
           ) -> slice:
    """A random run of axial slices (``keep`` fraction of them) for a scan that covers less of the body."""
    n = shape[2]
    length = max(1, int(round(n * rng.uniform(*keep))))
    start = int(rng.integers(0, n - length + 1))
    return slice(start, start + length)
