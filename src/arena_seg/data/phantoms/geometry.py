"""Geometry and random-field helpers: rotations and frames, splines, polyline distances, smooth fields."""

from __future__ import annotations

import numpy as np
from scipy.interpolate import CubicSpline


def _rot(rx: float = 0.0, ry: float = 0.0, rz: float = 0.0) -> np.ndarray:
    """Rotation matrix Rz @ Ry @ Rx (degrees); its columns are the shape's local axes in the anatomical frame."""
    ax, ay, az = np.deg2rad([rx, ry, rz])
    Rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    Ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    Rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return Rz @ Ry @ Rx


def _frame(long_axis, first_hint) -> np.ndarray:
    """Orthonormal frame (columns u0, u1, u2) with u2 along ``long_axis`` and u0 close to ``first_hint``."""
    u2 = np.asarray(long_axis, float)
    u2 = u2 / np.linalg.norm(u2)
    u0 = np.asarray(first_hint, float)
    u0 = u0 - u0.dot(u2) * u2
    u0 = u0 / np.linalg.norm(u0)
    u1 = np.cross(u2, u0)
    return np.stack([u0, u1, u2], axis=1)


def _curve(ctrl, radii, step: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Points every ~``step`` mm along a natural cubic spline through ``ctrl`` and radii interpolated along it."""
    ctrl = np.asarray(ctrl, float)
    radii = np.broadcast_to(np.asarray(radii, float), (len(ctrl),))
    keep = np.concatenate([[True], np.linalg.norm(np.diff(ctrl, axis=0), axis=1) > 0.5])
    ctrl, radii = ctrl[keep], radii[keep]
    if len(ctrl) == 1:
        ctrl, radii = np.concatenate([ctrl, ctrl + [0.0, 0.0, 1.0]]), np.concatenate([radii, radii])
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(ctrl, axis=0), axis=1))])
    ss = np.linspace(0.0, s[-1], max(int(s[-1] / step) + 1, 2))
    pts = CubicSpline(s, ctrl, axis=0, bc_type="natural")(ss) if len(ctrl) > 2 else (
        ctrl[0] + (ctrl[1] - ctrl[0]) * (ss / s[-1])[:, None])
    return pts, np.interp(ss, s, radii)


def _polyline_distance(c: np.ndarray, pts: np.ndarray, radii: np.ndarray, vstep: int = 2):
    """Distance from points ``c`` (n, 3) to the polyline through every ``vstep``-th of ``pts``; also the nearest
    position as a (fractional) index into ``pts`` and the radius interpolated there."""
    sel = np.unique(np.concatenate([np.arange(0, len(pts), vstep), [len(pts) - 1]]))
    if len(sel) < 2:
        sel = np.array([0, 0])
    V = pts[sel].astype(np.float32)
    A, AB = V[:-1], V[1:] - V[:-1]
    inv = (1.0 / np.maximum((AB * AB).sum(1), 1e-9)).astype(np.float32)[:, None]
    n, ns = len(c), len(A)
    best = np.empty(n, np.float32)
    pos = np.empty(n, np.float32)
    chunk = max(1, 300_000 // ns)
    for i0 in range(0, n, chunk):
        cx, cy, cz = (c[i0:i0 + chunk, j][None, :] for j in range(3))
        ex, ey, ez = cx - A[:, 0:1], cy - A[:, 1:2], cz - A[:, 2:3]
        t = (ex * AB[:, 0:1] + ey * AB[:, 1:2] + ez * AB[:, 2:3]) * inv
        np.clip(t, 0, 1, out=t)
        ex -= t * AB[:, 0:1]
        ey -= t * AB[:, 1:2]
        ez -= t * AB[:, 2:3]
        d2 = ex * ex + ey * ey + ez * ez
        j = np.argmin(d2, axis=0)
        cols = np.arange(d2.shape[1])
        best[i0:i0 + chunk] = d2[j, cols]
        pos[i0:i0 + chunk] = j + t[j, cols]
    seg = np.minimum(pos.astype(np.int64), ns - 1)
    frac = pos - seg
    k = sel[seg] + frac * (sel[seg + 1] - sel[seg])
    r = radii[sel[seg]] + frac * (radii[sel[seg + 1]] - radii[sel[seg]])
    return np.sqrt(best), k, r.astype(np.float32)


def _interp_matrix(n: int, step: float, corr: float, extent: float) -> np.ndarray:
    """(n, m) Gaussian interpolation weights from a coarse grid of spacing ``corr`` mm covering ``extent`` mm."""
    m = int(np.ceil(extent / corr)) + 4
    xo = np.arange(n) * step
    xc = (np.arange(m) - 2) * corr
    w = np.exp(-0.5 * ((xo[:, None] - xc[None, :]) / (0.6 * corr)) ** 2)
    return (w / w.sum(1, keepdims=True)).astype(np.float32)


def _smooth_field(rng: np.random.Generator, shape, spacing, corr: float, extent) -> np.ndarray:
    """A smooth random field of unit standard deviation, correlation length ~``corr`` mm (separable, fast).

    The coarse random grid depends only on ``extent`` (mm), so the same draws give the same field at any
    voxel spacing."""
    mx, my, mz = (_interp_matrix(n, s, corr, e) for n, s, e in zip(shape, spacing, extent, strict=True))
    c = rng.standard_normal((mx.shape[1], my.shape[1], mz.shape[1])).astype(np.float32)
    f = np.tensordot(mx, c, axes=(1, 0))  # (X, cy, cz)
    f = np.tensordot(f, my, axes=(1, 1))  # (X, cz, Y)
    f = np.tensordot(f, mz, axes=(1, 1))  # (X, Y, Z)
    f = np.ascontiguousarray(f)
    f /= max(float(f[::3, ::3, ::2].std()), 1e-6)
    return f


def _gauss_noise_gain(sigma: float) -> float:
    """Factor by which a discrete 1-D Gaussian filter of ``sigma`` voxels scales white-noise std."""
    if sigma <= 0:
        return 1.0
    r = int(4.0 * sigma + 0.5)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    return float(np.sqrt((k**2).sum()))


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)
