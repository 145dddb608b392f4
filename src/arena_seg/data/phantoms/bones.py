"""Bones and back muscles: erector spinae, psoas, spine, sacrum, pelvis, hips and ribs."""

from __future__ import annotations

import numpy as np

from .body import _spine_y
from .geometry import _curve, _smoothstep


def _bones(cv, p, rng, tex_md):
    """Erector spinae/psoas muscles, spine, ribs, pelvis and hips (painted in this order)."""
    z_sacrum = p.zS + 112.0 * p.kH  # L5/S1
    for s in (1, -1):
        _back_muscles(cv, p, tex_md, s)
    _spine(cv, p, tex_md, z_sacrum)
    _sacrum(cv, p, tex_md, z_sacrum)
    for s in (1, -1):
        _hip(cv, p, tex_md, s)
    _ribs(cv, p, tex_md)


def _back_muscles(cv, p, tex_md, s):
    """Paraspinal (erector spinae) and quadratus lumborum columns and the psoas of side ``s`` (+1 right)."""
    hu_mu = p.hu["muscle"]
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


def _spine(cv, p, tex_md, z_sacrum):
    """Vertebral bodies (cortical shell, discs), spinal canal and posterior elements above the sacrum."""
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


def _sacrum(cv, p, tex_md, z_sacrum):
    """The sacrum: a plate, concave in front, tilting backwards below L5/S1, with alae towards the ilia."""
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


def _hip(cv, p, tex_md, s):
    """Iliac wing, acetabulum and femoral head/neck of side ``s`` (+1 right)."""
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


def _ribs(cv, p, tex_md):
    """Ribs: oblique bands in the chest wall, posterior ends higher than anterior ones; costal cartilage, sternum."""
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
