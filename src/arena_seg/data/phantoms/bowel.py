"""Bowel (unlabelled): colon, duodenum, small-bowel loops and rectum, with gas, fluid and stool."""

from __future__ import annotations

import numpy as np

from .body import _spine_y
from .geometry import _curve


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
