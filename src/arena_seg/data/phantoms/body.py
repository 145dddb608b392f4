"""Body outline (skin, fat, muscle wall, cavity), chest (lungs, diaphragm, heart) and the spine's course."""

from __future__ import annotations

import numpy as np

from .constants import _FAT, _LUNG
from .geometry import _rot, _smoothstep


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
