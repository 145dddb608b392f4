"""Synthetic abdominal CT phantoms with organ labels (for pretraining and few-shot tests).

Every volume is built from simple analytic shapes (superellipsoids, tubes along splines, layered body wall)
evaluated in an *anatomical* frame that is bent by a smooth random displacement field, so a network sees
CT-like images: air, skin, subcutaneous fat, muscle wall, ribs, spine, lung bases, heart, bowel with gas and
fluid, vessels and the labelled organs, with phase-dependent contrast, texture, blur and noise.

Conventions
-----------
* Arrays are indexed ``(x, y, z)`` and the affine is RAS+ (NIfTI): index ``i`` grows towards the patient's
  Right, ``j`` towards Anterior, ``k`` towards Superior, so ``nibabel.aff2axcodes(affine) == ("R", "A", "S")``.
* The anatomical frame used inside this module has ``+x`` = patient right, ``+y`` = anterior and ``z`` in mm
  above the lowest slice; the liver is at ``+x``, the spleen at ``-x``, the spine at ``-y``.
* ``image`` is int16 Hounsfield units in [-1024, 3071]; ``label`` is uint8 with the ids of ``PHANTOM_LABELS``.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.interpolate import CubicSpline

__all__ = [
    "BASE_ORGANS",
    "NOVEL_ORGANS",
    "PHANTOM_LABELS",
    "PHASES",
    "Phantom",
    "default_spacing",
    "label_volumes_ml",
    "make_phantom",
    "phantom_seed",
    "write_phantoms",
]

PHANTOM_LABELS: dict[str, int] = {
    "liver": 1,
    "spleen": 2,
    "kidney_right": 3,
    "kidney_left": 4,
    "aorta": 5,
    "stomach": 6,
    "pancreas": 7,
    "gallbladder": 8,
    "inferior_vena_cava": 9,
    "urinary_bladder": 10,
}
BASE_ORGANS: tuple[str, ...] = ("liver", "spleen", "kidney_right", "kidney_left", "aorta", "stomach")
NOVEL_ORGANS: tuple[str, ...] = ("pancreas", "gallbladder", "inferior_vena_cava", "urinary_bladder")
PHASES: tuple[str, ...] = ("non_contrast", "arterial", "portal_venous")

HU_MIN, HU_MAX = -1024, 3071

# Mean HU per tissue for (non-contrast, arterial, portal-venous); each volume jitters the enhancement.
_HU_TABLE: dict[str, tuple[float, float, float]] = {
    "liver": (58, 74, 108),
    "spleen": (48, 118, 120),
    "kidney_cortex": (32, 190, 170),
    "kidney_medulla": (30, 80, 158),
    "aorta": (42, 300, 165),
    "ivc": (40, 95, 140),
    "ivc_low": (40, 55, 135),
    "portal": (40, 120, 178),
    "artery": (42, 280, 160),
    "vein": (40, 65, 140),
    "pancreas": (42, 118, 96),
    "gallbladder": (10, 10, 12),
    "bladder": (8, 8, 10),
    "bowel_wall": (38, 72, 92),
    "stomach_wall": (40, 78, 95),
    "muscle": (50, 55, 62),
    "myocardium": (45, 115, 102),
    "blood": (42, 260, 150),
    "hepatic_vessel": (38, 95, 165),
}

_AIR, _FAT, _LUNG = -1000.0, -100.0, -850.0


@dataclass
class Phantom:
    """One synthetic CT volume: ``image`` (int16 HU, (X, Y, Z)), ``label`` (uint8), RAS ``affine`` (4×4)."""

    image: np.ndarray
    label: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, float, float]
    name: str
    meta: dict = field(default_factory=dict)


def phantom_seed(seed: int, index: int) -> int:
    """The seed of volume ``index`` in a set written with ``seed`` (deterministic, well mixed)."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(index)]).generate_state(1)[0])


def label_volumes_ml(label: np.ndarray, spacing: tuple[float, float, float]) -> dict[str, float]:
    """Volume in mL of every organ of ``PHANTOM_LABELS`` in ``label``."""
    counts = np.bincount(label.ravel(), minlength=max(PHANTOM_LABELS.values()) + 1)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    return {organ: float(counts[i]) * voxel_ml for organ, i in PHANTOM_LABELS.items()}


# ----------------------------------------------------------------------------------------------- helpers


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


class _Canvas:
    """The volume being painted: anatomical coordinates of every voxel, image (HU) and label arrays."""

    def __init__(self, shape, spacing, origin, center, theta_deg, disp_amp, disp_corr, rng, extent):
        self.shape = tuple(int(n) for n in shape)
        self.spacing = np.asarray(spacing, float)
        self.origin = np.asarray(origin, float)
        self.center = np.asarray(center, float)  # world position of the anatomical origin
        t = np.deg2rad(theta_deg)
        self.R = np.array([[np.cos(t), np.sin(t), 0.0], [-np.sin(t), np.cos(t), 0.0], [0.0, 0.0, 1.0]])
        ax = (self.origin[0] + self.spacing[0] * np.arange(self.shape[0]) - self.center[0]).astype(np.float32)
        ay = (self.origin[1] + self.spacing[1] * np.arange(self.shape[1]) - self.center[1]).astype(np.float32)
        az = (self.origin[2] + self.spacing[2] * np.arange(self.shape[2]) - self.center[2]).astype(np.float32)
        c, s = np.float32(np.cos(t)), np.float32(np.sin(t))
        self.az = az
        self.qx = _smooth_field(rng, self.shape, self.spacing, disp_corr, extent)
        self.qy = _smooth_field(rng, self.shape, self.spacing, disp_corr, extent)
        self.qz = _smooth_field(rng, self.shape, self.spacing, disp_corr, extent)
        self.dmax = 0.0
        for f in (self.qx, self.qy, self.qz):  # largest displacement: bounds the boxes of the shapes
            self.dmax = max(self.dmax, disp_amp * float(np.abs(f[::2, ::2, ::2]).max()) * 1.1 + 0.5)
            f *= np.float32(disp_amp)
        self.qx += (c * ax)[:, None, None] + (s * ay)[None, :, None]
        self.qy += (-s * ax)[:, None, None] + (c * ay)[None, :, None]
        self.qz += az[None, None, :]
        # strided sample used to tighten boxes: nodes ~4 mm apart, q moves < margin between neighbours
        self.stride = tuple(max(2, int(round(4.0 / sp))) for sp in self.spacing)
        # margin[c]: how far coordinate c can move from the nearest strided node (half a stride on every axis)
        ssl = tuple(slice(None, None, st) for st in self.stride)
        self.margin = np.zeros(3)
        for c, arr in enumerate((self.qx, self.qy, self.qz)):
            sub = arr[ssl]
            steps = [float(np.abs(np.diff(sub, axis=i)).max()) if sub.shape[i] > 1 else 0.0 for i in range(3)]
            self.margin[c] = 0.55 * sum(steps) + 0.3
        self.world_y = (self.origin[1] + self.spacing[1] * np.arange(self.shape[1])).astype(np.float32)
        self.world_x = (self.origin[0] + self.spacing[0] * np.arange(self.shape[0])).astype(np.float32)
        self.img = np.full(self.shape, _AIR, np.float32)
        self.lab = np.zeros(self.shape, np.uint8)

    # -- geometry
    def bbox(self, lo, hi):
        """Index slices covering the anatomical box [lo, hi] (None when it misses the volume).

        A box padded by the largest displacement is tightened on a strided sample of the coordinates."""
        lo, hi = np.asarray(lo, float), np.asarray(hi, float)
        corners = np.array(list(itertools.product(*zip(lo, hi, strict=True))), float)
        w = corners @ self.R + self.center  # q = R (w - c)  =>  w = R^T q + c
        wlo = w.min(0) - self.dmax
        whi = w.max(0) + self.dmax
        ilo = np.maximum(np.floor((wlo - self.origin) / self.spacing).astype(int), 0)
        ihi = np.minimum(np.ceil((whi - self.origin) / self.spacing).astype(int) + 1, self.shape)
        if np.any(ihi <= ilo):
            return None
        st, m = self.stride, self.margin
        ssl = tuple(slice(int(a), int(b), int(s)) for a, b, s in zip(ilo, ihi, st, strict=True))
        ok = None
        for arr, lo_, hi_, mm in zip((self.qx, self.qy, self.qz), lo, hi, m, strict=True):
            v = arr[ssl]
            c = (v >= np.float32(lo_ - mm)) & (v <= np.float32(hi_ + mm))
            ok = c if ok is None else ok & c
        out = []
        for axis, (a, b, s) in enumerate(zip(ilo, ihi, st, strict=True)):
            hit = np.flatnonzero(ok.any(axis=tuple(i for i in range(3) if i != axis)))
            if hit.size == 0:
                return None
            out.append(slice(int(max(a + hit[0] * s - s, a)), int(min(a + hit[-1] * s + s + 1, b))))
        return tuple(out)

    def q(self, sl):
        return self.qx[sl], self.qy[sl], self.qz[sl]

    def ellipsoid(self, center, axes, R=None, power=2.0, pad=0.0, sl=None):
        """(slices, value, local coords) of a superellipsoid; value <= 1 inside (evaluated on ``sl`` if given)."""
        center = np.asarray(center, float)
        axes = np.asarray(axes, float)
        R = np.eye(3) if R is None else np.asarray(R, float)
        if sl is None:
            sl = self.bbox(*self.ellipsoid_box(center, axes, R, pad))
        if sl is None:
            return None
        qx, qy, qz = self.q(sl)
        dx, dy, dz = qx - np.float32(center[0]), qy - np.float32(center[1]), qz - np.float32(center[2])
        u = [(dx * np.float32(R[0, i]) + dy * np.float32(R[1, i]) + dz * np.float32(R[2, i])) / np.float32(axes[i])
             for i in range(3)]
        if power == 2.0:
            val = u[0] ** 2 + u[1] ** 2 + u[2] ** 2
        else:
            p = np.float32(power)
            val = (np.abs(u[0]) ** p + np.abs(u[1]) ** p + np.abs(u[2]) ** p) ** np.float32(2.0 / power)
        return sl, val, u

    @staticmethod
    def ellipsoid_box(center, axes, R, pad=0.0):
        """Anatomical bounding box (lo, hi) of a rotated ellipsoid."""
        ext = np.sqrt(((np.asarray(R) * np.asarray(axes, float)[None, :]) ** 2).sum(1)) + pad
        return np.asarray(center, float) - ext, np.asarray(center, float) + ext

    def tube(self, pts, radii, step: float = 1.0):
        """Voxels inside a tube along the dense centre line ``pts`` (~``step`` mm apart, radius ``radii`` per point).

        Returns (flat voxel indices, distance to the centre line, local radius, index of the nearest centre-line
        point) or None. The line is cut into pieces; each piece tests only the voxels of a capsule around its
        chord, and those with a k-d tree of its points."""
        pts = np.asarray(pts, float)
        radii = np.asarray(radii, float)
        rmax = float(radii.max())
        piece = int(np.ceil(max(16.0, 2.5 * rmax, 10.0 * float(self.spacing.min())) / step))
        flats, ds, rs_, ks = [], [], [], []
        for start in range(0, len(pts), piece):
            sub, rs = pts[start:start + piece + 1], radii[start:start + piece + 1]
            rm = float(rs.max())
            a, ab = sub[0], sub[-1] - sub[0]
            ab2 = max(float(ab @ ab), 1e-9)
            t = np.clip(((sub - a) @ ab) / ab2, 0, 1)
            rc = rm + float(np.sqrt((((sub - a) - t[:, None] * ab) ** 2).sum(1)).max()) + 1e-3
            sl = self.bbox(np.minimum(a, sub[-1]) - rc, np.maximum(a, sub[-1]) + rc)
            if sl is None:
                continue
            qx, qy, qz = self.q(sl)
            dx, dy, dz = qx - np.float32(a[0]), qy - np.float32(a[1]), qz - np.float32(a[2])
            t = (dx * np.float32(ab[0]) + dy * np.float32(ab[1]) + dz * np.float32(ab[2])) * np.float32(1 / ab2)
            np.clip(t, 0, 1, out=t)
            dx -= t * np.float32(ab[0])
            dy -= t * np.float32(ab[1])
            dz -= t * np.float32(ab[2])
            loc = np.nonzero(dx * dx + dy * dy + dz * dz <= np.float32(rc * rc))
            if loc[0].size == 0:
                continue
            c = np.stack([qx[loc], qy[loc], qz[loc]], axis=1)
            if len(sub) > 12:  # thinner capsules around 3 sub-chords drop most of the fat capsule's extra voxels
                keep = np.zeros(len(c), bool)
                for part in np.array_split(np.arange(len(sub)), 3):
                    ss = sub[part[0]:part[-1] + 2]
                    a2, ab_ = ss[0], ss[-1] - ss[0]
                    ab2_ = max(float(ab_ @ ab_), 1e-9)
                    t_ = np.clip(((ss - a2) @ ab_) / ab2_, 0, 1)
                    r2 = float(rs[part[0]:part[-1] + 2].max())
                    r2 += float(np.sqrt((((ss - a2) - t_[:, None] * ab_) ** 2).sum(1)).max()) + 1e-3
                    e = c - a2.astype(np.float32)
                    t_ = np.clip(e @ ab_.astype(np.float32) / np.float32(ab2_), 0, 1)
                    e -= t_[:, None] * ab_.astype(np.float32)
                    keep |= np.einsum("ij,ij->i", e, e) <= np.float32(r2 * r2)
                loc = tuple(ix[keep] for ix in loc)
                c = c[keep]
                if len(c) == 0:
                    continue
            d, k, r = _polyline_distance(c, sub, rs)
            ok = d <= r
            if not ok.any():
                continue
            idx = tuple(ix[ok] + s.start for ix, s in zip(loc, sl, strict=True))
            flats.append(np.ravel_multi_index(idx, self.shape))
            ds.append(d[ok].astype(np.float32))
            rs_.append(r[ok].astype(np.float32))
            ks.append((k[ok] + start).astype(np.float32))
        if not flats:
            return None
        flat, d, r, k = (np.concatenate(x) for x in (flats, ds, rs_, ks))
        if len(flats) > 1:
            order = np.lexsort((d, flat))
            flat = flat[order]
            first = np.concatenate([[True], flat[1:] != flat[:-1]])
            order = order[first]
            flat, d, r, k = flat[first], d[order], r[order], k[order]
        return flat, d, r, k

    @staticmethod
    def at(arr, where):
        """``arr`` at ``where``: a tuple of slices (a view) or flat voxel indices (a copy)."""
        return arr[where] if isinstance(where, tuple) else arr.reshape(-1)[where]

    # -- painting
    def paint(self, where, mask, hu, label=None):
        """Set HU (scalar or array over ``where``) where ``mask``; label too when ``label`` is not None.

        ``where`` is a tuple of slices or flat voxel indices (as :meth:`tube` gives)."""
        if where is None or not mask.any():
            return
        if isinstance(where, tuple):
            view = self.img[where]
            view[mask] = hu if np.isscalar(hu) else np.broadcast_to(hu, mask.shape)[mask]
            if label is not None:
                self.lab[where][mask] = label
            return
        f = where[mask]
        self.img.reshape(-1)[f] = hu if np.isscalar(hu) else np.broadcast_to(hu, mask.shape)[mask]
        if label is not None:
            self.lab.reshape(-1)[f] = label


# ------------------------------------------------------------------------------------------- generator


def make_phantom(seed: int, spacing: tuple[float, float, float] | None = None, name: str | None = None,
                 *, phase: str | None = None) -> Phantom:
    """One synthetic abdominal CT volume with labels, fully determined by ``seed``.

    ``spacing`` (mm, x y z): default varied per seed (in-plane 1.3-1.7, slices 2.5-5, mostly 3).
    ``phase``: "non_contrast", "arterial" or "portal_venous"; default chosen from the seed.
    """
    # independent streams: anatomy/contrast, smooth fields (drawn on a grid in mm), noise. The anatomy does not
    # depend on the spacing or on a forced phase: the same seed gives the same patient at any resolution.
    rng, rng_f, rng_n = (np.random.default_rng(s) for s in _seed_sequence(seed).spawn(3))
    drawn_phase, drawn_spacing = _draw_phase_spacing(rng)
    phase = drawn_phase if phase is None else phase
    if phase not in PHASES:
        raise ValueError(f"phase {phase!r} is not one of {PHASES}")
    spacing = drawn_spacing if spacing is None else tuple(float(s) for s in spacing)
    if len(spacing) != 3 or not all(np.isfinite(spacing)) or min(spacing) <= 0:
        raise ValueError(f"spacing must be three positive numbers in mm, got {spacing}")
    p = _Params(rng, phase, spacing)
    cv = _Canvas(p.shape, spacing, p.origin, p.center, p.theta, p.disp_amp, 60.0, rng_f, p.extent)
    tex_lo = _smooth_field(rng_f, p.shape, spacing, 22.0, p.extent)
    tex_md = _smooth_field(rng_f, p.shape, spacing, 6.0, p.extent)
    _paint_all(cv, p, rng, tex_lo, tex_md)
    image = _finish(cv.img, spacing, p, rng_n)
    affine = np.eye(4)
    affine[:3, :3] = np.diag(spacing)
    affine[:3, 3] = p.origin
    meta = {"seed": int(seed), "phase": phase, "noise_hu": round(p.noise, 2), "body_axes_mm": [p.a, p.b]}
    return Phantom(image=image, label=cv.lab, affine=affine, spacing=spacing,
                   name=name if name is not None else f"phantom_s{int(seed)}", meta=meta)


def _seed_sequence(seed: int) -> np.random.SeedSequence:
    s = int(seed)
    return np.random.SeedSequence(s if s >= 0 else s & 0xFFFFFFFFFFFFFFFF)


def _draw_phase_spacing(rng: np.random.Generator) -> tuple[str, tuple[float, float, float]]:
    phase = PHASES[int(rng.choice(3, p=[0.25, 0.25, 0.5]))]
    sxy = round(float(rng.uniform(1.3, 1.7)), 3)
    return phase, (sxy, sxy, float(rng.choice([2.5, 3.0, 3.75, 5.0], p=[0.2, 0.45, 0.2, 0.15])))


def default_spacing(seed: int) -> tuple[float, float, float]:
    """The spacing ``make_phantom(seed)`` uses when none is given (in-plane 1.3-1.7 mm, slices 2.5-5 mm)."""
    rng = np.random.default_rng(_seed_sequence(seed).spawn(3)[0])
    return _draw_phase_spacing(rng)[1]


class _Params:
    """All random choices of one phantom (body, landmarks, organ scales, HU values)."""

    def __init__(self, rng: np.random.Generator, phase: str, spacing):
        u = rng.uniform
        self.phase = phase
        fov = u(360.0, 400.0)
        self.H = u(295.0, 335.0)  # right diaphragm dome -> pubic symphysis
        top, bot = u(28.0, 48.0), u(14.0, 26.0)
        length = self.H + top + bot
        sx, sy, sz = spacing
        self.shape = (int(round(fov / sx)), int(round(fov / sy)), int(round(length / sz)) + 1)
        self.extent = (fov, fov, length)
        self.L = length
        self.origin = np.array([-(self.shape[0] - 1) * sx / 2, -(self.shape[1] - 1) * sy / 2,
                                -round(u(250.0, 450.0), 1)])
        self.a = u(138.0, 162.0)
        self.b = self.a * u(0.68, 0.80)
        self.center = np.array([u(-8, 8), u(-10, 10), self.origin[2]])
        self.theta = u(-4.0, 4.0)
        self.disp_amp = u(2.0, 4.0)
        self.t_sc = u(6.0, 14.0) + 0.5 * (self.a - 138.0)  # subcutaneous fat, mm
        self.t_mu = u(8.0, 13.0)
        self.w_ant = u(0.15, 0.6)
        self.w_post = min(self.w_ant + u(0.3, 0.5), 1.0)
        self.zD = self.L - top  # right dome
        self.zS = bot  # pubic symphysis / bladder base
        self.kH = self.H / 315.0
        a_c = self.a - 1.05 * self.t_sc - self.t_mu
        b_c = 2 * self.b - 2.1 * self.t_sc - 2 * self.t_mu
        self.kx = float(np.clip(a_c / 125.0, 0.85, 1.15))
        self.ky = float(np.clip(b_c / 170.0, 0.85, 1.15))
        self.y_cp = -(self.b - 0.8 * self.t_sc - self.t_mu)  # posterior cavity boundary (midline)
        self.noise = u(10.0, 25.0)
        self.blur_xy = u(0.5, 0.9)  # mm
        self.table = bool(rng.random() < 0.75)
        self.oral_contrast = bool(rng.random() < 0.2)
        # HU per tissue
        k = PHASES.index(phase)
        self.hu = {}
        for name, vals in _HU_TABLE.items():
            base, enh = vals[0], vals[k] - vals[0]
            self.hu[name] = base + enh * u(0.85, 1.15) + rng.normal(0, 3)
        aorta_arterial = u(250.0, 350.0)  # always drawn: a forced phase must not change the anatomy
        if phase == "arterial":
            self.hu["aorta"] = aorta_arterial
        # per-organ volume scales (+-15 %) and position jitter
        self.vol = {o: u(0.87, 1.15) for o in ("liver", "spleen", "kidney_right", "kidney_left", "pancreas",
                                                 "gallbladder", "stomach", "aorta", "ivc")}
        self.bladder_ml = u(130.0, 340.0)
        self.liver_ml = u(1380.0, 1900.0)  # the intrahepatic IVC takes a little of it
        self.spleen_ml = u(165.0, 280.0)
        self.pancreas_ml = u(68.0, 95.0)
        self.gallbladder_ml = u(24.0, 46.0)
        self.jit = {o: rng.normal(0, 3.0, 3) for o in ("liver", "spleen", "kidney_right", "kidney_left", "pancreas",
                                                         "gallbladder", "stomach", "bladder", "heart")}

    def zd(self, depth):
        """Height (mm above the lowest slice) of a level ``depth`` mm (reference body) below the right dome."""
        return self.zD - np.asarray(depth, float) * self.kH

    def xs(self, x):
        return np.asarray(x, float) * self.kx

    def ys(self, y):
        return np.asarray(y, float) * self.ky


# -------------------------------------------------------------------------------------------- anatomy


def _paint_all(cv: _Canvas, p: _Params, rng: np.random.Generator, tex_lo: np.ndarray, tex_md: np.ndarray) -> None:
    # CT table (world frame, not deformed): two thin shells with foam in between
    if p.table:
        ytop = p.center[1] - p.b - 4.0
        xw = cv.world_x[:, None]
        y = cv.world_y[None, :]
        curve = ytop - 0.0012 * xw**2  # distance measured downward
        d = curve - y
        tab = ((d >= 0) & (d < 2.5)) | ((d >= 26) & (d < 29))
        foam = (d >= 2.5) & (d < 26)
        cv.img[foam] = -960.0
        cv.img[tab] = 250.0

    _body(cv, p, rng, tex_lo, tex_md)
    # kidneys: positions and frames; their perirenal fat keeps bowel away
    cv.kid = {}
    cv.keep = np.zeros(cv.shape, bool)  # perirenal fat: no bowel there
    cv.keep_near = np.zeros(cv.shape, bool)  # a thin fat rim: liver and spleen stay out
    for organ, s, depth in (("kidney_right", 1, 142.0), ("kidney_left", -1, 127.0)):
        c = np.array([s * p.xs(80.0), p.y_cp + 44.0 * p.ky, p.zd(depth)]) + p.jit[organ]
        lat = np.array([s * np.cos(np.deg2rad(32)), -np.sin(np.deg2rad(32)), 0.0])  # lateral, posterolateral
        R = _frame([-s * 0.22, -0.12, 1.0], lat)
        axes = np.array([25.5, 27.4, 57.8]) * p.vol[organ] ** (1 / 3)
        cv.kid[organ] = (c, R, axes, s)
        res = cv.ellipsoid(c, axes + 12.0, R)
        if res is not None:
            sl, val, _ = res
            cv.keep[sl] |= val <= 1.0
        res = cv.ellipsoid(c, axes + 4.0, R)
        if res is not None:
            sl, val, _ = res
            cv.keep_near[sl] |= val <= 1.0
    _chest(cv, p, tex_lo, tex_md)
    _bones(cv, p, rng, tex_md)
    _bowel(cv, p, rng, tex_md)
    _vessels_and_organs(cv, p, rng, tex_lo, tex_md)


def _body(cv, p, rng, tex_lo, tex_md):
    """Skin, subcutaneous fat, muscle wall, visceral fat; keeps the cavity depth and the rib shell for later."""
    amax = p.a * 1.07 + 2.0
    sl = cv.bbox(np.array([-amax, -p.b - 2.0, -100.0]), np.array([amax, p.b + 2.0, p.L + 100.0]))
    qx, qy = cv.q(sl)[:2]
    az = cv.az[sl[2]]
    # body half-widths: hips widen the lower body (nominal z is enough for that)
    pelvis_z = _smoothstep((p.zS + 130.0 - az) / 60.0).astype(np.float32)
    inv_a = (1.0 / (p.a * (1.0 + 0.07 * pelvis_z))).astype(np.float32)[None, None, :]
    u2 = qx * inv_a
    u2 *= u2
    v2 = qy * np.float32(1.0 / p.b)
    v2 *= v2
    # blend of an ellipse (w=0) and a squircle (w=1); the back lying on the table is flatter
    w = np.where(qy < 0, np.float32(p.w_post), np.float32(p.w_ant))
    e = u2 + v2
    e *= e
    rn4 = u2 * u2
    rn4 += v2 * v2
    rn4 -= e
    rn4 *= w
    rn4 += e
    del u2, v2, e, w
    rn = np.sqrt(np.sqrt(rn4, out=rn4), out=rn4)
    rho = np.sqrt(qx * qx + qy * qy)
    rho += np.float32(1e-3)
    depth = rho / np.maximum(rn, np.float32(1e-6), out=rn)
    depth -= rho  # mm inside the skin along the ray from the body centre
    sin_phi = np.divide(qy, rho, out=rho)
    tl = cv.at(tex_lo, sl)
    t_sc = np.maximum(sin_phi, 0)
    t_sc *= 0.5
    t_sc += 1.05 - 0.25 * sin_phi * sin_phi
    t_sc *= np.float32(p.t_sc) * (1 + 0.15 * tl)
    wall = np.subtract(depth, t_sc, out=t_sc)
    gl = np.clip(0.3 - sin_phi, 0, 1.3)
    gl *= (35.0 * pelvis_z)[None, None, :]  # gluteal muscles
    inner = wall - np.float32(p.t_mu) * (1.0 + 0.25 * tl)
    inner -= gl
    del gl
    layer = (depth > 0).astype(np.uint8)
    layer += depth > 1.8
    layer += wall > 0
    layer += inner > 0
    del depth, wall
    # air (unchanged), skin, subcutaneous fat, muscle, visceral fat
    base = np.array([0.0, 25.0, _FAT - 8.0, p.hu["muscle"], _FAT + 6.0], np.float32)
    amp_md = np.array([0.0, 0.0, 8.0, 5.0, 10.0], np.float32)
    amp_lo = np.array([0.0, 0.0, 0.0, 0.0, 6.0], np.float32)
    val = base[layer] + amp_md[layer] * cv.at(tex_md, sl) + amp_lo[layer] * tl
    view = cv.img[sl]
    np.copyto(view, val, where=layer > 0)
    del val, layer
    cv.inner = np.full(cv.shape, -1000.0, np.float32)
    cv.inner[sl] = inner  # mm inside the muscle wall (negative in the wall/fat)
    cv.cav = cv.inner > 2.5
    # the shell where ribs can be (within the chest wall, upper part of the volume)
    band = (inner > -9.0) & (inner < 1.5) & (cv.at(cv.qz, sl) > p.zd(180.0))
    loc = np.nonzero(band)
    cv.rib_idx = np.ravel_multi_index(tuple(ix + s.start for ix, s in zip(loc, sl, strict=True)), cv.shape)
    cv.rib_sphi = sin_phi[loc]


def _dome(p):
    """Callable giving the diaphragm height at anatomical (x, y)."""
    xr, yr, zr = p.xs(58.0), p.ys(-5.0), p.zD
    xl, yl, zl = p.xs(-58.0), p.ys(-10.0), p.zD - 10.0 * p.kH

    def z_dia(x, y):
        dr = ((x - np.float32(xr)) ** 2 + 1.4 * (y - np.float32(yr)) ** 2) / np.float32(100.0**2)
        dl = ((x - np.float32(xl)) ** 2 + 1.4 * (y - np.float32(yl)) ** 2) / np.float32(100.0**2)
        return np.maximum(np.float32(zr) - 62.0 * dr, np.float32(zl) - 62.0 * dl)

    return z_dia


def _chest(cv, p, tex_lo, tex_md):
    """Lung bases above the diaphragm, heart with pericardial fat, mediastinal fat, diaphragm muscle."""
    z_dia = _dome(p)
    cv.z_dia = z_dia
    lo = np.array([-250.0, -200.0, p.zD - 170.0])
    hi = np.array([250.0, 200.0, p.L + 50.0])
    sl = cv.bbox(lo, hi)
    if sl is None:
        return
    qx, qy, qz = cv.q(sl)
    zd = z_dia(qx, qy)
    cav = cv.at(cv.inner, sl) > 0
    chest = cav & (qz > zd)
    # mediastinum: central strip in front of the spine
    med = (np.abs(qx - np.float32(p.xs(-8.0))) < 24.0) & (qy > np.float32(p.y_cp + 30.0))
    cv.paint(sl, chest, (_LUNG + 25.0 * cv.at(tex_lo, sl) + 10.0 * cv.at(tex_md, sl)))
    # lung vessels: sparse bright blobs
    ves = chest & (cv.at(tex_md, sl) > 2.0)
    cv.paint(sl, ves, -150.0 + 60.0 * cv.at(tex_md, sl))
    cv.paint(sl, chest & med, _FAT + 10.0 * cv.at(tex_md, sl))
    # diaphragm: a 4 mm muscle sheet just below the dome surface
    dia = cav & (qz <= zd) & (qz > zd - 4.5)
    cv.paint(sl, dia, p.hu["muscle"] + 4.0 * cv.at(tex_md, sl))
    # heart with pericardial fat
    c = np.array([p.xs(-20.0), p.ys(32.0), p.zD + 52.0]) + p.jit["heart"]
    R = _rot(rz=28.0, ry=-12.0)
    res = cv.ellipsoid(c, (72.0, 52.0, 60.0), R)
    if res is not None:
        hs, val, _ = res
        hq = cv.at(cv.qz, hs) > z_dia(cv.at(cv.qx, hs), cv.at(cv.qy, hs))
        cv.paint(hs, (val <= 1.0) & hq, _FAT + 8.0 * cv.at(tex_md, hs))
        res2 = cv.ellipsoid(c, (64.0, 45.0, 53.0), R)
        hs2, val2, _ = res2
        hq2 = cv.at(cv.qz, hs2) > z_dia(cv.at(cv.qx, hs2), cv.at(cv.qy, hs2)) + 3.0
        cv.paint(hs2, (val2 <= 1.0) & hq2, p.hu["myocardium"] + 5.0 * cv.at(tex_md, hs2))
        cv.paint(hs2, (val2 <= 0.55) & hq2, p.hu["blood"] + 5.0 * cv.at(tex_md, hs2))


def _spine_y(p, z):
    """Vertebral body centre (anatomical y) at height z: lumbar lordosis brings the spine forward."""
    z = np.asarray(z, float)
    lord = 9.0 * np.exp(-(((z - p.zd(205.0)) / 70.0) ** 2))
    return p.y_cp + 58.0 * p.ky + lord


def _bones(cv, p, rng, tex_md):
    """Erector spinae/psoas muscles, spine, ribs, pelvis and hips."""
    hu_mu = p.hu["muscle"]
    z_sacrum = p.zS + 112.0 * p.kH  # L5/S1
    # paraspinal (erector spinae) and quadratus lumborum columns
    for s in (1, -1):
        res = cv.ellipsoid((s * 31.0, p.y_cp + 10.0, p.L / 2), (25.0, 22.0, p.L))
        if res is not None:
            sl, val, _ = res
            cv.paint(sl, val <= 1.0, hu_mu + 5.0 * cv.at(tex_md, sl))
        res = cv.ellipsoid((s * p.xs(58.0), p.y_cp + 16.0, p.zd(175.0)), (17.0, 10.0, 60.0))
        if res is not None:
            sl, val, _ = res
            cv.paint(sl, (val <= 1.0) & cv.at(cv.cav, sl), hu_mu + 5.0 * cv.at(tex_md, sl))
        # psoas: grows downward, drifts laterally and forward
        zs = np.linspace(p.zd(115.0), p.zS + 25.0, 8)
        t = np.linspace(0, 1, 8)
        yv = _spine_y(p, zs)
        ctrl = np.stack([s * (26.0 + 40.0 * t**1.3) * p.kx, yv + 6.0 + 28.0 * t**2, zs], axis=1)
        pts, r = _curve(ctrl, 7.0 + 16.0 * np.sin(np.pi * np.minimum(t * 1.3, 1.0) / 2))
        res = cv.tube(pts, r)
        if res is not None:
            sl, d, rr, _ = res
            cv.paint(sl, d <= rr, hu_mu + 5.0 * cv.at(tex_md, sl))

    # ---- spine: vertebral bodies with cortical shell, discs, canal, posterior elements
    lo = np.array([-46.0, p.y_cp - 10.0, z_sacrum - 5.0])
    hi = np.array([46.0, p.y_cp + 80.0, p.L + 20.0])
    sl = cv.bbox(lo, hi)
    if sl is not None:
        qx, qy, qz = cv.q(sl)
        yv = _spine_y(p, qz)
        lumbar = _smoothstep((p.zd(120.0) - qz) / 60.0)
        ax = 19.0 + 6.0 * lumbar
        ay = 14.5 + 3.0 * lumbar
        dxv, dyv = qx / ax, (qy - yv) / ay
        rv = np.sqrt(dxv**2 + dyv**2 * (1 + 0.25 * (dyv < 0)))  # flatter posterior wall
        period = 30.0 * p.kH
        zph = np.mod(qz - (p.zD - 15.0), period)
        disc = zph < 8.0
        endplate = (zph < 10.0) | (zph > period - 2.0)
        vb = (rv <= 1.0) & (qz >= z_sacrum - 3.0)
        cortical = vb & ((rv > 1.0 - 2.5 / ax) | endplate) & ~disc
        cv.paint(sl, vb & ~disc, 200.0 + 35.0 * cv.at(tex_md, sl))
        cv.paint(sl, cortical, 560.0)
        cv.paint(sl, vb & disc, 85.0 + 8.0 * cv.at(tex_md, sl))
        # canal and posterior arch
        yc = yv - (ay + 12.0)
        rc = np.sqrt((qx / 11.0) ** 2 + ((qy - yc) / 8.5) ** 2)
        level = ~disc & (zph > 10.0)
        arch = (rc > 1.0) & (np.sqrt((qx / 18.0) ** 2 + ((qy - yc) / 15.0) ** 2) <= 1.0) & (qy < yv) & level
        spinous = (np.abs(qx) < 4.0) & (qy < yc) & (qy > p.y_cp - 6.0) & (zph > 12.0) & (zph < period - 3)
        transverse = (np.abs(qx) < 26.0 + 14.0 * lumbar) & (np.abs(qy - yc - 6.0) < 4.5) & (zph > 13.0) & (
            zph < 23.0)
        above = qz >= z_sacrum - 3.0
        cv.paint(sl, (arch | spinous | transverse) & above, 430.0 + 40.0 * cv.at(tex_md, sl))
        cv.paint(sl, (rc <= 1.0) & above, 22.0 + 4.0 * cv.at(tex_md, sl))
    # ---- sacrum: a plate, concave in front, tilting backwards below L5/S1, with alae towards the ilia
    sl = cv.bbox(np.array([-80.0, p.y_cp - 40.0, -10.0]), np.array([80.0, p.y_cp + 90.0, z_sacrum + 5.0]))
    if sl is not None:
        qx, qy, qz = cv.q(sl)
        t = np.clip((z_sacrum - qz) / max(z_sacrum - p.zS, 1.0), 0, 1.3)
        yc = _spine_y(p, z_sacrum) - 6.0 - 45.0 * t + 30.0 * np.maximum(t - 0.8, 0) ** 2
        hw = 62.0 - 47.0 * t
        ht = 15.0 - 7.0 * t
        bend = yc - 0.006 * qx * qx  # lateral parts (alae) lie further back
        dy = np.abs(qy - bend)
        sac = (np.abs(qx) <= hw) & (dy <= ht * (1.0 - 0.4 * (np.abs(qx) / hw) ** 2)) & (qz <= z_sacrum) & (t < 1.05)
        cv.paint(sl, sac, 240.0 + 40.0 * cv.at(tex_md, sl))
        shell = sac & ((np.abs(qx) > hw - 3.0) | (dy > ht * (1.0 - 0.4 * (np.abs(qx) / hw) ** 2) - 2.5))
        cv.paint(sl, shell, 520.0)
        holes = sac & (np.abs(np.abs(qx) - 22.0 + 6.0 * t) < 4.0) & (np.mod(qz, 24.0) < 9.0)  # foramina
        canal = sac & (np.abs(qx) < 8.0) & (np.abs(qy - bend + 3.0) < 4.0)
        cv.paint(sl, holes | canal, 20.0)
    # ---- iliac wings, acetabula and femoral heads/necks
    for s in (1, -1):
        z0, z1 = p.zS + 35.0, p.zS + 128.0 * p.kH
        xs = sorted((s * 25.0, s * 150.0))
        sl = cv.bbox(np.array([xs[0], p.y_cp - 10.0, z0 - 5.0]), np.array([xs[1], p.ys(60.0), z1 + 5.0]))
        if sl is not None:
            qx, qy, qz = cv.q(sl)
            t = np.clip((qz - z0) / (z1 - z0), 0, 1)
            cx = s * p.xs(60.0 + 16.0 * t)
            cy = p.y_cp + 40.0 + 10.0 * t
            A = 22.0 + 34.0 * t
            B = 24.0 + 28.0 * t
            u = s * (qx - cx)  # lateral positive
            v = qy - cy
            rr = np.sqrt((u / A) ** 2 + (v / B) ** 2)
            rad = np.sqrt(u**2 + v**2)
            dist = rad - rad / np.maximum(rr, 1e-3)
            ang = np.degrees(np.arctan2(v, u))
            thick = 2.5 + 2.5 * (1 - t) + 0.8 * np.cos(np.deg2rad(ang))  # thicker at the crest's outer lip
            wing = (np.abs(dist) < thick) & (ang > -150.0) & (ang < 62.0) & (qz >= z0) & (qz <= z1)
            cv.paint(sl, wing, 260.0 + 40.0 * cv.at(tex_md, sl))
            cv.paint(sl, wing & (np.abs(dist) > thick - 1.8), 600.0)
        head = np.array([s * p.xs(86.0), p.y_cp + 62.0, p.zS + 18.0])
        pts, r = _curve([head, head + np.array([s * 26.0, -6.0, -22.0]), head + np.array([s * 34.0, -10.0, -60.0])],
                        [16.0, 15.0, 15.0])
        res = cv.tube(pts, r)
        if res is not None:
            sl, d, rr, _ = res
            cv.paint(sl, d <= rr, 300.0 + 40.0 * cv.at(tex_md, sl))
            cv.paint(sl, (d <= rr) & (d > rr - 2.5), 650.0)
        res = cv.ellipsoid(head, (30.0, 30.0, 30.0))
        if res is not None:
            sl, val, u = res
            cup = (val <= 1.0) & (val > 0.62) & (u[2] > -0.1) & (s * u[0] > -0.4)
            cv.paint(sl, cup, 500.0)
        res = cv.ellipsoid(head, (23.0, 23.0, 23.0))
        if res is not None:
            sl, val, _ = res
            cv.paint(sl, val <= 1.0, 300.0 + 40.0 * cv.at(tex_md, sl))
            cv.paint(sl, (val <= 1.0) & (val > 0.8), 620.0)

    # ---- ribs: oblique bands in the chest wall, posterior ends higher than anterior ones
    idx, sphi = cv.rib_idx, cv.rib_sphi
    if idx.size:
        qx, qy, qz = cv.at(cv.qx, idx), cv.at(cv.qy, idx), cv.at(cv.qz, idx)
        drop = 150.0 * p.kH
        pitch = 27.0 * p.kH
        zz = qz + drop * (1.0 + sphi) / 2.0  # each rib runs down from its posterior end to the front
        s = (zz - p.zD) / pitch
        frac = np.abs(s - np.round(s)) * pitch
        # costal margin: high in front (xiphoid), low at the flanks; no ribs behind the spine
        z_low = p.zd(170.0 - 150.0 * np.maximum(sphi, 0) ** 2)
        rib = (frac < 5.0) & (qz > z_low) & ~((np.abs(qx) < 42.0) & (qy < 0))
        cart = rib & (sphi > 0.75)
        tm = cv.at(tex_md, idx)
        cv.paint(idx, rib & ~cart, 420.0 + 80.0 * tm)
        cv.paint(idx, cart, 120.0 + 15.0 * tm)
        inner = cv.at(cv.inner, idx)
        st = (np.abs(qx) < 14.0) & (inner > -6.0) & (sphi > 0.9) & (qz > p.zD - 25.0)  # sternum / xiphoid
        cv.paint(idx, st, 300.0 + 50.0 * tm)


def _fill_lumen(cv, p, sl, inside, lumen, content, wall_hu, tex):
    keep = cv.at(cv.keep, sl)
    cv.paint(sl, inside & ~keep, wall_hu + 4.0 * tex)
    cv.paint(sl, lumen & ~keep, content)


def _bowel(cv, p, rng, tex_md):
    """Colon (mottled stool + gas), duodenum, small-bowel loops, rectum; unlabelled."""
    hu_w = p.hu["bowel_wall"]
    X, Y, zd, zS = p.xs, p.ys, p.zd, p.zS
    yr = _spine_y(p, p.zS + 60.0) - 8.0  # rectum in front of the sacrum
    colon = [
        (X(85), Y(8), zS + 95.0), (X(95), Y(-8), zd(205)), (X(88), Y(10), zd(172)),
        (X(45), Y(55), zd(165)), (X(0), Y(62), zd(185)), (X(-45), Y(52), zd(150)), (X(-86), Y(10), zd(112)),
        (X(-100), Y(-14), zd(165)), (X(-98), Y(-8), zd(235)), (X(-62), Y(8), zS + 95.0),
        (X(-20), Y(22), zS + 88.0), (X(-4), yr + 12.0, zS + 70.0), (0.0, yr, zS + 30.0), (0.0, yr - 5.0, -15.0),
    ]
    pts, r = _curve(colon, [25, 22, 21, 20, 20, 20, 20, 19, 18, 16, 15, 15, 14, 12])
    s = np.arange(len(pts), dtype=float)
    r = r * (1.0 + 0.10 * np.sin(2 * np.pi * s / 24.0))  # haustra
    res = cv.tube(pts, r)
    if res is not None:
        sl, d, rr, _ = res
        tm = cv.at(tex_md, sl)
        gas_bias = rng.uniform(-0.4, 0.6)
        stool = np.clip(-150.0 + 140.0 * tm, -420.0, 60.0)
        content = np.where(tm + gas_bias + 0.02 * (cv.at(cv.qy, sl) - 20.0) > 1.0, -900.0, stool)
        _fill_lumen(cv, p, sl, d <= rr, d <= rr - 2.5, content, hu_w, tm)
    # duodenal C-loop around the pancreatic head
    yao = _spine_y(p, zd(150)) + 14.5 + 3.0 + 12.0
    duo = [(X(18), Y(38), zd(110)), (X(46), Y(18), zd(118)), (X(54), yao - 2.0, zd(145)),
           (X(46), yao - 4.0, zd(172)), (X(10), yao + 6.0, zd(182)), (X(-22), yao + 10.0, zd(172)),
           (X(-38), Y(25), zd(152))]
    pts, r = _curve(duo, 11.0)
    res = cv.tube(pts, r)
    if res is not None:
        sl, d, rr, _ = res
        fill = rng.choice([-880.0, 15.0, p.hu["bowel_wall"]], p=[0.3, 0.4, 0.3])
        _fill_lumen(cv, p, sl, d <= rr, d <= rr - 2.5, fill, hu_w, cv.at(tex_md, sl))
    # small-bowel loops in the mid and lower abdomen
    lo = np.array([X(-70), yao + 8.0, zS + 75.0])
    hi = np.array([X(70), Y(62), zd(185)])
    n_loops = int(rng.integers(7, 11))
    fluid = rng.uniform(180, 320) if p.oral_contrast else rng.uniform(5, 25)
    for _ in range(n_loops):
        p0 = rng.uniform(lo, hi)
        t = np.linspace(0, 1, 160)[:, None]
        path = p0 + sum(rng.normal(0, 28.0 / f, 3) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
                        for f in (1, 2, 3))
        path = np.clip(path, lo, hi)
        radius = rng.uniform(9.0, 13.0)
        pts, r = _curve(path[::8], radius)
        res = cv.tube(pts, r)
        if res is None:
            continue
        sl, d, rr, _ = res
        kind = rng.choice(3, p=[0.5, 0.2, 0.3])
        fill = (fluid + 6.0 * cv.at(tex_md, sl), -870.0, hu_w)[kind]
        _fill_lumen(cv, p, sl, d <= rr, d <= rr - 2.2, fill, hu_w, cv.at(tex_md, sl))


def _fit_volume(val, ok, target_ml, spacing, lo=0.55, hi=2.25, with_threshold=False):
    """``ok & (val <= t)`` with t chosen (within [lo, hi]) so that the mask holds ~``target_ml``."""
    v_ok = val[ok]
    n = int(target_ml * 1000.0 / float(np.prod(spacing)))
    thr = float(np.clip(hi if v_ok.size <= n else float(np.partition(v_ok, n)[n]), lo, hi))
    m = ok & (val <= thr)
    return (m, thr) if with_threshold else m


def _vessels_and_organs(cv, p, rng, tex_lo, tex_md):
    hu = p.hu
    X, Y, zd, zS = p.xs, p.ys, p.zd, p.zS
    L = PHANTOM_LABELS
    z_dia = cv.z_dia
    top = p.L + 30.0
    # ---- landmarks of the great vessels
    r_ao = 11.0 * p.vol["aorta"] ** 0.5
    r_ivc = 11.5 * p.vol["ivc"] ** 0.5
    z_bif = zd(192.0)
    zs_ao = np.array([top, zd(0), zd(50), zd(100), zd(150), z_bif])
    yv = _spine_y(p, zs_ao)
    ant = yv + 14.5 + 3.0 * _smoothstep((zd(120.0) - zs_ao) / 60.0)
    ao_ctrl = np.stack([[-22.0, -19.0, -14.0, -11.0, -9.0, -7.0], np.array(ant) + r_ao + np.array(
        [-12.0, -6.0, 0.0, 2.0, 2.5, 3.0]), zs_ao], axis=1)
    ao_ctrl[:, 0] *= p.kx
    zs_iv = np.array([top, zd(5), zd(35), zd(70), zd(120), zd(170), zd(200)])
    yvi = _spine_y(p, zs_iv) + 14.5
    iv_ctrl = np.stack([X([8.0, 14.0, 22.0, 24.0, 23.0, 21.0, 18.0]),
                        yvi + r_ivc + np.array([26.0, 16.0, 7.0, 3.0, 2.0, 2.0, 1.0]), zs_iv], axis=1)
    y_ao = float(np.interp(zd(100.0), zs_ao[::-1], ao_ctrl[::-1, 1]))  # aorta centre at the pancreas level
    hu_art, hu_vein = hu["artery"], hu["vein"]

    # ---- iliac arteries and veins (unlabelled)
    for s in (1, -1):
        a0 = ao_ctrl[-1]
        pts, r = _curve([a0, a0 + np.array([s * 14.0, -2.0, -25.0]), (s * X(60), p.y_cp + 60.0, zS + 90.0),
                         (s * X(72), p.y_cp + 75.0, zS + 30.0), (s * X(78), p.y_cp + 85.0, -20.0)],
                        [0.7 * r_ao, 6.5, 6.0, 5.5, 5.5])
        res = cv.tube(pts, r)
        if res is not None:
            sl, d, rr, _ = res
            cv.paint(sl, d <= rr, hu_art + 5.0 * cv.at(tex_md, sl))
        v0 = iv_ctrl[-1]
        pts, r = _curve([v0, v0 + np.array([s * 12.0 - 6.0, -8.0, -22.0]), (s * X(56), p.y_cp + 52.0, zS + 90.0),
                         (s * X(66), p.y_cp + 66.0, zS + 30.0), (s * X(72), p.y_cp + 76.0, -20.0)],
                        [0.75 * r_ivc, 7.5, 7.0, 7.0, 7.0])
        res = cv.tube(pts, r)
        if res is not None:
            sl, d, rr, _ = res
            cv.paint(sl, d <= rr, hu_vein + 5.0 * cv.at(tex_md, sl))

    kid = cv.kid
    # renal veins to the IVC (left one crosses in front of the aorta) and renal arteries behind them
    for c, R, axes, s in kid.values():
        hil = c - R[:, 0] * axes[0] * 0.7
        z_r = c[2] + 8.0
        ivc_pt = np.array([float(np.interp(z_r, iv_ctrl[::-1, 2], iv_ctrl[::-1, 0])),
                           float(np.interp(z_r, iv_ctrl[::-1, 2], iv_ctrl[::-1, 1])), z_r])
        if s > 0:
            ctrl = [hil, (hil + ivc_pt) / 2 + np.array([0, 4.0, 2.0]), ivc_pt]
        else:
            ya = float(np.interp(z_r, zs_ao[::-1], ao_ctrl[::-1, 1]))
            xa = float(np.interp(z_r, zs_ao[::-1], ao_ctrl[::-1, 0]))
            ctrl = [hil, (xa - 22.0, ya + 8.0, z_r), (xa, ya + r_ao + 5.0, z_r), ivc_pt]
        pts, r = _curve(ctrl, 5.0)
        res = cv.tube(pts, r)
        if res is not None:
            sl, d, rr, _ = res
            cv.paint(sl, d <= rr, hu_vein + 5.0 * cv.at(tex_md, sl))
        ya = float(np.interp(c[2] + 14.0, zs_ao[::-1], ao_ctrl[::-1, 1]))
        xa = float(np.interp(c[2] + 14.0, zs_ao[::-1], ao_ctrl[::-1, 0]))
        pts, r = _curve([(xa, ya - 3.0, c[2] + 14.0), (xa + s * 25.0, ya - 10.0, c[2] + 10.0), hil + [0, -6.0, 4.0]],
                        3.0)
        res = cv.tube(pts, r)
        if res is not None:
            sl, d, rr, _ = res
            cv.paint(sl, d <= rr, hu_art)

    # ---- portal venous system and SMA (unlabelled)
    conf = np.array([X(10.0), y_ao + 14.0, zd(112.0)])
    pancreas_ctrl = np.array([(X(34), y_ao + 10.0, zd(138)), (X(12), y_ao + 27.0, zd(112)),
                              (X(-24), y_ao + 25.0, zd(100)), (X(-62), y_ao + 6.0, zd(88)),
                              (X(-80), y_ao - 10.0, zd(80))]) + p.jit["pancreas"]
    spleen_c = np.array([X(-94.0), p.y_cp + 48.0 * p.ky, zd(62.0)]) + p.jit["spleen"]
    sv = [conf, pancreas_ctrl[2] + [0, -14.0, 0], pancreas_ctrl[3] + [0, -13.0, 0], spleen_c + [X(28.0), 18.0, -8.0]]
    pts, r = _curve(sv, 5.0)
    res = cv.tube(pts, r)
    if res is not None:
        sl, d, rr, _ = res
        cv.paint(sl, d <= rr, hu["portal"] + 5.0 * cv.at(tex_md, sl))
    liver_c = np.array([X(52.0), Y(6.0), zd(72.0)]) + p.jit["liver"]
    porta = np.array([X(38.0), y_ao + 20.0, zd(88.0)])
    pv = [conf + [X(2.0), 0, -95.0], conf + [X(2.0), 4.0, -40.0], conf, porta, liver_c + [X(8.0), -10.0, -5.0]]
    pts, r = _curve(pv, [5.0, 5.5, 7.0, 7.0, 6.0])
    res = cv.tube(pts, r)
    if res is not None:
        sl, d, rr, _ = res
        cv.paint(sl, d <= rr, hu["portal"] + 5.0 * cv.at(tex_md, sl))
    sma_top = np.array([float(np.interp(zd(95.0), zs_ao[::-1], ao_ctrl[::-1, 0])), y_ao + r_ao - 2.0, zd(95.0)])
    pts, r = _curve([sma_top, sma_top + [2.0, 14.0, -22.0], sma_top + [6.0, 20.0, -100.0]], 3.8)
    res = cv.tube(pts, r)
    if res is not None:
        sl, d, rr, _ = res
        cv.paint(sl, d <= rr, hu_art + 5.0 * cv.at(tex_md, sl))

    # ---- diaphragmatic crura around the upper aorta: muscle, and no liver/stomach/spleen there
    up = ao_ctrl[ao_ctrl[:, 2] >= zd(100.0) - 1e-6]
    pts, r = _curve(np.concatenate([up, [[up[-1, 0], up[-1, 1], zd(88.0)]]]), r_ao + 8.0)
    res = cv.tube(pts, r)
    if res is not None:
        sl, d, rr, _ = res
        qz = cv.at(cv.qz, sl)
        m = cv.at(cv.cav, sl) & (qz < z_dia(cv.at(cv.qx, sl), cv.at(cv.qy, sl)))
        cv.paint(sl, m, hu["muscle"] + 5.0 * cv.at(tex_md, sl))
        cv.cav.reshape(-1)[sl] = False

    # ---- IVC (with the intrahepatic part) and aorta first: the organs painted after them keep off labels
    pts, r = _curve(iv_ctrl, r_ivc)
    res = cv.tube(pts, r)
    if res is not None:
        sl, d, rr, _ = res
        qz = cv.at(cv.qz, sl)
        z_ren = kid["kidney_left"][0][2] + 8.0
        val = np.where(qz > z_ren, hu["ivc"], hu["ivc_low"]) + 5.0 * cv.at(tex_md, sl)
        cv.paint(sl, (d <= rr) & (qz > zd(197.0)), val, L["inferior_vena_cava"])
    pts, r = _curve(ao_ctrl, r_ao)
    res = cv.tube(pts, r)
    if res is not None:
        sl, d, rr, _ = res
        qz = cv.at(cv.qz, sl)
        m = (d <= rr) & (qz > z_bif - 2.0)
        cv.paint(sl, m, hu["aorta"] + 5.0 * cv.at(tex_md, sl), L["aorta"])
        if p.phase == "non_contrast":  # calcified plaque specks on the wall
            calc = m & (d > rr - 1.8) & (cv.at(tex_md, sl) > 1.6)
            cv.paint(sl, calc, 500.0)

    # ---- stomach: J-shaped tube from fundus to pylorus, gas anteriorly (patient supine)
    k = p.vol["stomach"] ** (1 / 3)
    st_ctrl = np.array([(X(-58), Y(-8), zd(32)), (X(-70), Y(18), zd(68)), (X(-48), Y(46), zd(102)),
                        (X(-8), Y(52), zd(116)), (X(18), Y(38), zd(110))]) + p.jit["stomach"]
    pts, r = _curve(st_ctrl, np.array([34.0, 31.0, 26.0, 19.0, 12.0]) * k)
    res = cv.tube(pts, r)
    if res is not None:
        sl, d, rr, _ = res
        inside = (d <= rr) & cv.at(cv.cav, sl) & (cv.at(cv.lab, sl) == 0)
        inside &= cv.at(cv.qz, sl) < z_dia(cv.at(cv.qx, sl), cv.at(cv.qy, sl)) - 4.5
        lumen = inside & (d <= rr - 4.0)
        qy = cv.at(cv.qy, sl)
        y_gas = float(pts[:, 1].max() + r.max()) - rng.uniform(8.0, 40.0)
        food = rng.random() < 0.3
        fluid = (25.0 + 25.0 * cv.at(tex_md, sl)) if food else (10.0 + 4.0 * cv.at(tex_md, sl))
        if p.oral_contrast:
            fluid = fluid + rng.uniform(120, 250)
        content = np.where(qy > y_gas, -900.0 + 20.0 * cv.at(tex_md, sl), fluid)
        cv.paint(sl, inside, hu["stomach_wall"] + 5.0 * cv.at(tex_md, sl), L["stomach"])
        cv.paint(sl, lumen, content, L["stomach"])

    # ---- kidneys: cortex, medulla, hilum with sinus fat
    for organ, (c, R, axes, _) in kid.items():
        res = cv.ellipsoid(c, axes, R, pad=10.0)
        if res is None:
            continue
        sl, val, u = res
        hil = (u[0] + 0.85) ** 2 / 0.5**2 + u[1] ** 2 / 0.45**2 + u[2] ** 2 / 0.35**2 <= 1.0
        target = 0.9 * 4.0 / 3.0 * np.pi * float(np.prod(axes)) / 1000.0  # nominal volume less the hilum
        free = cv.at(cv.cav, sl) & (cv.at(cv.lab, sl) == 0)
        m, thr = _fit_volume(val, ~hil & free, target, cv.spacing, lo=0.7, hi=1.5, with_threshold=True)
        medulla = m & (val < 0.5 * thr) & (cv.at(tex_md, sl) > -0.6)
        cv.paint(sl, m, hu["kidney_cortex"] + 5.0 * cv.at(tex_md, sl), L[organ])
        cv.paint(sl, medulla, hu["kidney_medulla"] + 5.0 * cv.at(tex_md, sl))
        sinus = (val <= thr) & hil & free
        cv.paint(sl, sinus, _FAT + 30.0 + 15.0 * cv.at(tex_md, sl), 0)
        pelvis = sinus & ((u[0] + 0.85) ** 2 / 0.3**2 + u[1] ** 2 / 0.2**2 + u[2] ** 2 / 0.2**2 <= 1.0)
        cv.paint(sl, pelvis, 8.0, 0)

    # ---- pancreas: head, uncinate, neck, body, tail; lobulated outline, size fitted to the sampled volume
    pts, r = _curve(pancreas_ctrl, [21.0, 13.2, 14.2, 13.2, 10.8])
    unc = _curve([pancreas_ctrl[0], pancreas_ctrl[0] + [X(-14), -6.0, -16.0]], [16.0, 10.0])
    flats, vals = [], []
    for pts_, r_ in ((pts, r), unc):
        res = cv.tube(pts_, r_ * 1.3)
        if res is not None:
            flat, d, rr, _ = res
            lob = 8.0 * cv.at(tex_md, flat)
            flats.append(flat)
            vals.append((d + 1.2 - 0.15 * lob) / (rr / 1.3))  # <= 1 inside the nominal outline
    if flats:
        flat, val = np.concatenate(flats), np.concatenate(vals)
        order = np.lexsort((val, flat))
        flat, val = flat[order], val[order]
        first = np.concatenate([[True], flat[1:] != flat[:-1]])
        flat, val = flat[first], val[first]
        lab = cv.at(cv.lab, flat)
        ok = cv.at(cv.cav, flat) & (lab == 0)
        m = _fit_volume(val, ok, p.pancreas_ml, cv.spacing, lo=0.75, hi=1.3)
        cv.paint(flat, m, hu["pancreas"] + 8.0 * cv.at(tex_md, flat), L["pancreas"])

    # ---- gallbladder: pear under the liver, fundus pointing antero-inferiorly
    neck = np.array([X(34.0), Y(12.0), zd(100.0)]) + p.jit["gallbladder"]
    fundus = neck + np.array([X(16.0), Y(30.0), -44.0])
    R = _frame(neck - fundus, [1.0, 0.0, 0.0])
    axes = np.array([17.0, 17.0, 38.0])
    res = cv.ellipsoid((neck + fundus) / 2, axes, R, pad=12.0)
    if res is not None:
        sl, _, u = res
        taper = 0.62 + 0.38 * np.clip((1.0 - u[2]) / 2.0, 0, 1)  # narrow at the neck (u2 = +1)
        pear = (u[0] / taper) ** 2 + (u[1] / taper) ** 2 + u[2] ** 2
        m = _fit_volume(pear, cv.at(cv.cav, sl) & (cv.at(cv.lab, sl) == 0), p.gallbladder_ml, cv.spacing, hi=1.8)
        cv.paint(sl, m, hu["gallbladder"] + 3.0 * cv.at(tex_md, sl), L["gallbladder"])

    # spleen and liver fill the space the other organs left (so their volumes come out as sampled)
    # ---- spleen: crescent against the left posterolateral wall
    out = np.array([-0.72, -0.69, 0.0])
    R = _frame([0.15, 0.55, -1.0], out)
    axes = np.array([28.5, 57.0, 70.0])
    res = cv.ellipsoid(spleen_c, axes, R, pad=20.0)
    if res is not None:
        sl, val, u = res
        hollow = (u[0] + 1.15) ** 2 / 0.75**2 + u[1] ** 2 / 0.8**2 + u[2] ** 2 / 0.95**2 <= 1.0
        ok = ~hollow & cv.at(cv.cav, sl) & (cv.at(cv.qz, sl) < z_dia(cv.at(cv.qx, sl), cv.at(cv.qy, sl)) - 4.5)
        ok &= (cv.at(cv.lab, sl) == 0) & ~cv.at(cv.keep_near, sl)
        m = _fit_volume(val, ok, p.spleen_ml, cv.spacing)
        amp = 25.0 if p.phase == "arterial" else 4.0
        cv.paint(sl, m, hu["spleen"] + amp * cv.at(tex_md, sl) + 4.0 * cv.at(tex_lo, sl), L["spleen"])

    # ---- liver (right lobe + left lobe), clipped under the diaphragm and inside the cavity
    # its size is set by thresholding the lobes' distance field at the target volume (the clipping by the
    # body wall would otherwise tie the liver volume to the body size)
    lobes = [(liver_c, np.array([88.0, 92.0, 86.0]), _rot(rz=-10.0)),
             (np.array([X(-8.0), Y(34.0), zd(48.0)]) + p.jit["liver"], np.array([62.0, 39.0, 39.0]),
              _rot(rz=-20.0, ry=12.0))]
    boxes = [cv.ellipsoid_box(c, axes * 1.5, R) for c, axes, R in lobes]
    sl = cv.bbox(np.min([b[0] for b in boxes], 0), np.max([b[1] for b in boxes], 0))
    val = np.minimum(*(cv.ellipsoid(c, axes, R, power=2.2, sl=sl)[1] for c, axes, R in lobes))
    qx, qy, qz = cv.q(sl)
    ok = cv.at(cv.cav, sl) & (qz < z_dia(qx, qy) - 4.5) & (val <= 2.25)
    ok &= (cv.at(cv.lab, sl) == 0) & ~cv.at(cv.keep_near, sl)
    # nothing behind/left of the IVC (the aorta is retroperitoneal): an oblique, slightly wavy border
    x_border = X(14.0) - 0.8 * np.maximum(qy - (y_ao - 10.0), 0) + 5.0 * cv.at(tex_lo, sl)
    ok &= ~((qx < x_border) & (qy < y_ao + 30.0))
    m = _fit_volume(val, ok, p.liver_ml, cv.spacing)
    cv.paint(sl, m, hu["liver"] + 6.0 * cv.at(tex_lo, sl) + 3.0 * cv.at(tex_md, sl), L["liver"])
    # hepatic veins / portal branches inside the liver (image only, the label keeps them as liver)
    hv_top = iv_ctrl[1]
    branches = [
        [hv_top, hv_top + [X(40), Y(-8), -30.0], hv_top + [X(75), Y(-12), -55.0]],
        [hv_top, hv_top + [X(10), Y(22), -30.0], hv_top + [X(18), Y(45), -60.0]],
        [hv_top, hv_top + [X(-25), Y(25), -15.0], hv_top + [X(-55), Y(40), -25.0]],
        [porta, liver_c + [X(8.0), -10.0, -5.0], liver_c + [X(40.0), -5.0, -25.0]],
        [porta, liver_c + [X(-20.0), 15.0, 5.0], liver_c + [X(-55.0), 30.0, 20.0]],
    ]
    for br in branches:
        pts, r = _curve(br, [5.5, 4.0, 2.5])
        res = cv.tube(pts, r)
        if res is not None:
            sl, d, rr, _ = res
            m = (d <= rr) & (cv.at(cv.lab, sl) == L["liver"])
            cv.paint(sl, m, hu["hepatic_vessel"] + 4.0 * cv.at(tex_md, sl))

    # ---- urinary bladder in the pelvis
    a = (3 * p.bladder_ml * 1000.0 / (4 * np.pi * 1.3 * 0.95)) ** (1 / 3)
    axes = np.array([1.3 * a, a, 0.95 * a])
    c = np.array([0.0, p.ys(22.0), zS + axes[2] + 4.0]) + p.jit["bladder"]
    res = cv.ellipsoid(c, axes, _rot(rx=-10.0), power=2.3)
    if res is not None:
        sl, val, _ = res
        wall = val <= 1.0
        cv.paint(sl, wall, hu["bowel_wall"] + 4.0 * cv.at(tex_md, sl), L["urinary_bladder"])
        cv.paint(sl, val <= (1.0 - 3.0 / a) ** 2, hu["bladder"] + 3.0 * cv.at(tex_md, sl), L["urinary_bladder"])


def _finish(img: np.ndarray, spacing, p: _Params, rng: np.random.Generator) -> np.ndarray:
    """Noise (correlated by the blur), slight blur, rounding to int16 HU."""
    sig = (p.blur_xy / spacing[0], p.blur_xy / spacing[1], 0.3)
    gain = _gauss_noise_gain(sig[0]) * _gauss_noise_gain(sig[1]) * _gauss_noise_gain(sig[2])
    img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(p.noise / gain)
    img = ndimage.gaussian_filter(img, sig, mode="nearest", truncate=3.0)
    np.clip(img, HU_MIN, HU_MAX, out=img)
    return np.rint(img).astype(np.int16)


# ---------------------------------------------------------------------------------------------- writing


def write_phantoms(out: str | Path, n: int, seed: int, dicom: bool = False,
                   spacing: tuple[float, float, float] | None = None, prefix: str = "phantom") -> list[str]:
    """Write ``n`` phantoms: ``out/images/NAME.nii.gz`` (int16 HU), ``out/labels/NAME.nii.gz`` (uint8),
    ``out/labels.json`` ({organ: id}) and, with ``dicom``, ``out/dicom/NAME/`` (one CT series each).

    Volume ``i`` is ``make_phantom(phantom_seed(seed, i), spacing)`` named ``f"{prefix}_{i:03d}"``.
    Returns the names.
    """
    import nibabel as nib

    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    (out / "labels.json").write_text(json.dumps(PHANTOM_LABELS, indent=2) + "\n")
    names = []
    for i in range(int(n)):
        name = f"{prefix}_{i:03d}"
        ph = make_phantom(phantom_seed(seed, i), spacing=spacing, name=name)
        for arr, sub in ((ph.image, "images"), (ph.label, "labels")):
            nii = nib.Nifti1Image(arr, ph.affine)
            nii.set_qform(ph.affine, code=1)
            nii.set_sform(ph.affine, code=1)
            nii.header.set_xyzt_units("mm")
            if sub == "images":
                nii.header["descrip"] = f"arena-seg phantom {ph.meta['phase']}".encode()[:79]
            nib.save(nii, str(out / sub / f"{name}.nii.gz"))
        if dicom:
            from arena_seg.data.dicom_write import write_dicom_series

            write_dicom_series(ph.image, ph.affine, out / "dicom" / name, patient_id=name,
                               series_description=f"synthetic CT {ph.meta['phase']}", seed=ph.meta["seed"])
        names.append(name)
    return names
