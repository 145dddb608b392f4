"""The drawing canvas: the randomly deformed anatomical frame of every voxel and the painting primitives."""

from __future__ import annotations

import itertools

import numpy as np

from .constants import _AIR
from .geometry import _polyline_distance, _smooth_field


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
