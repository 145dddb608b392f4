"""Random per-patient parameters: seeds, phase and spacing draws, body size, landmarks, organ scales, HU."""

from __future__ import annotations

import numpy as np

from .constants import _HU_TABLE, PHASES


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
