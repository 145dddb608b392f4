"""Vessels and labelled organs: great vessels and branches, stomach, kidneys, pancreas, gallbladder, spleen,
liver and urinary bladder."""

from __future__ import annotations

import numpy as np

from .body import _spine_y
from .constants import _FAT, PHANTOM_LABELS
from .geometry import _curve, _frame, _rot, _smoothstep


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
