"""Labelled organs around the vessels: stomach, kidneys, pancreas, gallbladder, spleen, liver and urinary
bladder, painted in that order (each keeps off the labels painted before it)."""

from __future__ import annotations

import numpy as np

from .constants import _FAT, PHANTOM_LABELS
from .geometry import _curve, _frame, _rot
from .vessels import _Landmarks, _landmarks, _vessels


def _fit_volume(val, ok, target_ml, spacing, lo=0.55, hi=2.25, with_threshold=False):
    """``ok & (val <= t)`` with t chosen (within [lo, hi]) so that the mask holds ~``target_ml``."""
    v_ok = val[ok]
    n = int(target_ml * 1000.0 / float(np.prod(spacing)))
    thr = float(np.clip(hi if v_ok.size <= n else float(np.partition(v_ok, n)[n]), lo, hi))
    m = ok & (val <= thr)
    return (m, thr) if with_threshold else m


def _vessels_and_organs(cv, p, rng, tex_lo, tex_md):
    """The vessels (:mod:`.vessels`), then the labelled organs; spleen and liver last, so that they fill the space
    the others left and their volumes come out as sampled."""
    lm = _landmarks(p)
    _vessels(cv, p, lm, tex_md)
    _stomach(cv, p, rng, tex_md)
    _kidneys(cv, p, tex_md)
    _pancreas(cv, p, lm, tex_md)
    _gallbladder(cv, p, tex_md)
    _spleen(cv, p, lm, tex_lo, tex_md)
    _liver(cv, p, lm, tex_lo, tex_md)
    _bladder(cv, p, tex_md)


def _stomach(cv, p, rng, tex_md):
    """J-shaped tube from fundus to pylorus, gas anteriorly (patient supine), food or oral contrast."""
    hu, L, X, Y, zd, z_dia = p.hu, PHANTOM_LABELS, p.xs, p.ys, p.zd, cv.z_dia
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


def _kidneys(cv, p, tex_md):
    """Cortex, medulla, hilum with sinus fat and renal pelvis, at the places the generator chose."""
    hu, L = p.hu, PHANTOM_LABELS
    for organ, (c, R, axes, _) in cv.kid.items():
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


def _pancreas(cv, p, lm: _Landmarks, tex_md):
    """Head, uncinate, neck, body, tail; lobulated outline, size fitted to the sampled volume."""
    hu, L, X = p.hu, PHANTOM_LABELS, p.xs
    pancreas_ctrl = lm.pancreas_ctrl
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


def _gallbladder(cv, p, tex_md):
    """A pear under the liver, fundus pointing antero-inferiorly."""
    hu, L, X, Y, zd = p.hu, PHANTOM_LABELS, p.xs, p.ys, p.zd
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


def _spleen(cv, p, lm: _Landmarks, tex_lo, tex_md):
    """A crescent against the left posterolateral wall."""
    hu, L, z_dia = p.hu, PHANTOM_LABELS, cv.z_dia
    spleen_c = lm.spleen_c
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


def _liver(cv, p, lm: _Landmarks, tex_lo, tex_md):
    """Right and left lobes clipped under the diaphragm and inside the cavity, with vessels in the image only.

    Its size is set by thresholding the lobes' distance field at the target volume (the clipping by the body
    wall would otherwise tie the liver volume to the body size).
    """
    hu, L, X, Y, zd, z_dia = p.hu, PHANTOM_LABELS, p.xs, p.ys, p.zd, cv.z_dia
    liver_c, porta, y_ao, iv_ctrl = lm.liver_c, lm.porta, lm.y_ao, lm.iv_ctrl
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


def _bladder(cv, p, tex_md):
    """The urinary bladder in the pelvis: wall and urine, both labelled."""
    hu, L, zS = p.hu, PHANTOM_LABELS, p.zS
    a = (3 * p.bladder_ml * 1000.0 / (4 * np.pi * 1.3 * 0.95)) ** (1 / 3)
    axes = np.array([1.3 * a, a, 0.95 * a])
    c = np.array([0.0, p.ys(22.0), zS + axes[2] + 4.0]) + p.jit["bladder"]
    res = cv.ellipsoid(c, axes, _rot(rx=-10.0), power=2.3)
    if res is not None:
        sl, val, _ = res
        wall = val <= 1.0
        cv.paint(sl, wall, hu["bowel_wall"] + 4.0 * cv.at(tex_md, sl), L["urinary_bladder"])
        cv.paint(sl, val <= (1.0 - 3.0 / a) ** 2, hu["bladder"] + 3.0 * cv.at(tex_md, sl), L["urinary_bladder"])
