"""Great vessels and their branches: aorta and IVC (labelled), iliac, renal and portal vessels, SMA and the
diaphragmatic crura (image only). :func:`_landmarks` places them; the organs are painted around them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .body import _spine_y
from .constants import PHANTOM_LABELS
from .geometry import _curve, _smoothstep


@dataclass(frozen=True)
class _Landmarks:
    """Centre lines and anchor points shared by the vessels and the organs around them (anatomical mm)."""

    r_ao: float  # aortic radius
    r_ivc: float  # IVC radius
    z_bif: float  # aortic bifurcation height
    zs_ao: np.ndarray  # heights of the aortic control points, top down
    ao_ctrl: np.ndarray  # aortic centre line (5-6 control points)
    iv_ctrl: np.ndarray  # IVC centre line
    y_ao: float  # aorta centre (anatomical y) at the pancreas level
    conf: np.ndarray  # portal confluence
    pancreas_ctrl: np.ndarray  # pancreas centre line, head to tail
    spleen_c: np.ndarray  # spleen centre
    liver_c: np.ndarray  # right liver lobe centre
    porta: np.ndarray  # porta hepatis

    def aorta_at(self, z: float, axis: int) -> float:
        """Coordinate ``axis`` of the aortic centre line at height ``z``."""
        return float(np.interp(z, self.zs_ao[::-1], self.ao_ctrl[::-1, axis]))


def _landmarks(p) -> _Landmarks:
    X, Y, zd = p.xs, p.ys, p.zd
    top = p.L + 30.0
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
    conf = np.array([X(10.0), y_ao + 14.0, zd(112.0)])
    pancreas_ctrl = np.array([(X(34), y_ao + 10.0, zd(138)), (X(12), y_ao + 27.0, zd(112)),
                              (X(-24), y_ao + 25.0, zd(100)), (X(-62), y_ao + 6.0, zd(88)),
                              (X(-80), y_ao - 10.0, zd(80))]) + p.jit["pancreas"]
    spleen_c = np.array([X(-94.0), p.y_cp + 48.0 * p.ky, zd(62.0)]) + p.jit["spleen"]
    liver_c = np.array([X(52.0), Y(6.0), zd(72.0)]) + p.jit["liver"]
    porta = np.array([X(38.0), y_ao + 20.0, zd(88.0)])
    return _Landmarks(r_ao=r_ao, r_ivc=r_ivc, z_bif=z_bif, zs_ao=zs_ao, ao_ctrl=ao_ctrl, iv_ctrl=iv_ctrl, y_ao=y_ao,
                      conf=conf, pancreas_ctrl=pancreas_ctrl, spleen_c=spleen_c, liver_c=liver_c, porta=porta)


def _vessel(cv, ctrl, radii, hu: float, tex_md, gain: float | None = 5.0) -> None:
    """Paint the tube along ``ctrl`` with HU ``hu`` (+ ``gain`` × texture; None: flat), unlabelled."""
    pts, r = _curve(ctrl, radii)
    res = cv.tube(pts, r)
    if res is not None:
        sl, d, rr, _ = res
        cv.paint(sl, d <= rr, hu if gain is None else hu + gain * cv.at(tex_md, sl))


def _vessels(cv, p, lm: _Landmarks, tex_md) -> None:
    """Every vessel, in painting order: iliac, renal, portal and SMA, crura, then the labelled IVC and aorta."""
    for s in (1, -1):
        _iliac_vessels(cv, p, lm, tex_md, s)
    for c, R, axes, s in cv.kid.values():
        _renal_vessels(cv, p, lm, tex_md, c, R, axes, s)
    _portal_system(cv, p, lm, tex_md)
    _crura(cv, p, lm, tex_md)
    _ivc_and_aorta(cv, p, lm, tex_md)


def _iliac_vessels(cv, p, lm: _Landmarks, tex_md, s) -> None:
    """Common/external iliac artery and vein of side ``s`` (+1 right), unlabelled."""
    X, zS = p.xs, p.zS
    a0 = lm.ao_ctrl[-1]
    _vessel(cv, [a0, a0 + np.array([s * 14.0, -2.0, -25.0]), (s * X(60), p.y_cp + 60.0, zS + 90.0),
                 (s * X(72), p.y_cp + 75.0, zS + 30.0), (s * X(78), p.y_cp + 85.0, -20.0)],
            [0.7 * lm.r_ao, 6.5, 6.0, 5.5, 5.5], p.hu["artery"], tex_md)
    v0 = lm.iv_ctrl[-1]
    _vessel(cv, [v0, v0 + np.array([s * 12.0 - 6.0, -8.0, -22.0]), (s * X(56), p.y_cp + 52.0, zS + 90.0),
                 (s * X(66), p.y_cp + 66.0, zS + 30.0), (s * X(72), p.y_cp + 76.0, -20.0)],
            [0.75 * lm.r_ivc, 7.5, 7.0, 7.0, 7.0], p.hu["vein"], tex_md)


def _renal_vessels(cv, p, lm: _Landmarks, tex_md, c, R, axes, s) -> None:
    """Renal vein to the IVC (the left one crosses in front of the aorta) and renal artery behind it."""
    iv_ctrl = lm.iv_ctrl
    hil = c - R[:, 0] * axes[0] * 0.7
    z_r = c[2] + 8.0
    ivc_pt = np.array([float(np.interp(z_r, iv_ctrl[::-1, 2], iv_ctrl[::-1, 0])),
                       float(np.interp(z_r, iv_ctrl[::-1, 2], iv_ctrl[::-1, 1])), z_r])
    if s > 0:
        ctrl = [hil, (hil + ivc_pt) / 2 + np.array([0, 4.0, 2.0]), ivc_pt]
    else:
        ya, xa = lm.aorta_at(z_r, 1), lm.aorta_at(z_r, 0)
        ctrl = [hil, (xa - 22.0, ya + 8.0, z_r), (xa, ya + lm.r_ao + 5.0, z_r), ivc_pt]
    _vessel(cv, ctrl, 5.0, p.hu["vein"], tex_md)
    ya, xa = lm.aorta_at(c[2] + 14.0, 1), lm.aorta_at(c[2] + 14.0, 0)
    _vessel(cv, [(xa, ya - 3.0, c[2] + 14.0), (xa + s * 25.0, ya - 10.0, c[2] + 10.0), hil + [0, -6.0, 4.0]],
            3.0, p.hu["artery"], tex_md, gain=None)


def _portal_system(cv, p, lm: _Landmarks, tex_md) -> None:
    """Splenic and portal veins and the superior mesenteric artery (unlabelled)."""
    X, zd = p.xs, p.zd
    conf, pc = lm.conf, lm.pancreas_ctrl
    sv = [conf, pc[2] + [0, -14.0, 0], pc[3] + [0, -13.0, 0], lm.spleen_c + [X(28.0), 18.0, -8.0]]
    _vessel(cv, sv, 5.0, p.hu["portal"], tex_md)
    pv = [conf + [X(2.0), 0, -95.0], conf + [X(2.0), 4.0, -40.0], conf, lm.porta, lm.liver_c + [X(8.0), -10.0, -5.0]]
    _vessel(cv, pv, [5.0, 5.5, 7.0, 7.0, 6.0], p.hu["portal"], tex_md)
    sma_top = np.array([lm.aorta_at(zd(95.0), 0), lm.y_ao + lm.r_ao - 2.0, zd(95.0)])
    _vessel(cv, [sma_top, sma_top + [2.0, 14.0, -22.0], sma_top + [6.0, 20.0, -100.0]], 3.8, p.hu["artery"], tex_md)


def _crura(cv, p, lm: _Landmarks, tex_md) -> None:
    """Diaphragmatic crura around the upper aorta: muscle, and no liver/stomach/spleen there."""
    zd = p.zd
    up = lm.ao_ctrl[lm.ao_ctrl[:, 2] >= zd(100.0) - 1e-6]
    pts, r = _curve(np.concatenate([up, [[up[-1, 0], up[-1, 1], zd(88.0)]]]), lm.r_ao + 8.0)
    res = cv.tube(pts, r)
    if res is not None:
        sl, d, rr, _ = res
        qz = cv.at(cv.qz, sl)
        m = cv.at(cv.cav, sl) & (qz < cv.z_dia(cv.at(cv.qx, sl), cv.at(cv.qy, sl)))
        cv.paint(sl, m, p.hu["muscle"] + 5.0 * cv.at(tex_md, sl))
        cv.cav.reshape(-1)[sl] = False


def _ivc_and_aorta(cv, p, lm: _Landmarks, tex_md) -> None:
    """IVC (with the intrahepatic part) and aorta, labelled first: the organs painted after them keep off."""
    hu, L = p.hu, PHANTOM_LABELS
    pts, r = _curve(lm.iv_ctrl, lm.r_ivc)
    res = cv.tube(pts, r)
    if res is not None:
        sl, d, rr, _ = res
        qz = cv.at(cv.qz, sl)
        z_ren = cv.kid["kidney_left"][0][2] + 8.0
        val = np.where(qz > z_ren, hu["ivc"], hu["ivc_low"]) + 5.0 * cv.at(tex_md, sl)
        cv.paint(sl, (d <= rr) & (qz > p.zd(197.0)), val, L["inferior_vena_cava"])
    pts, r = _curve(lm.ao_ctrl, lm.r_ao)
    res = cv.tube(pts, r)
    if res is not None:
        sl, d, rr, _ = res
        qz = cv.at(cv.qz, sl)
        m = (d <= rr) & (qz > lm.z_bif - 2.0)
        cv.paint(sl, m, hu["aorta"] + 5.0 * cv.at(tex_md, sl), L["aorta"])
        if p.phase == "non_contrast":  # calcified plaque specks on the wall
            calc = m & (d > rr - 1.8) & (cv.at(tex_md, sl) > 1.6)
            cv.paint(sl, calc, 500.0)
