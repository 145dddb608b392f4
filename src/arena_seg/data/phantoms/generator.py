"""The phantom generator: :class:`Phantom`, :func:`make_phantom` and its painting order, noise and blur."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .body import _body, _chest
from .bones import _bones
from .bowel import _bowel
from .canvas import _Canvas
from .constants import HU_MAX, HU_MIN, PHANTOM_LABELS, PHASES
from .geometry import _frame, _gauss_noise_gain, _smooth_field
from .organs import _vessels_and_organs
from .params import _draw_phase_spacing, _Params, _seed_sequence


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


def _finish(img: np.ndarray, spacing, p: _Params, rng: np.random.Generator) -> np.ndarray:
    """Noise (correlated by the blur), slight blur, rounding to int16 HU."""
    sig = (p.blur_xy / spacing[0], p.blur_xy / spacing[1], 0.3)
    gain = _gauss_noise_gain(sig[0]) * _gauss_noise_gain(sig[1]) * _gauss_noise_gain(sig[2])
    img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(p.noise / gain)
    img = ndimage.gaussian_filter(img, sig, mode="nearest", truncate=3.0)
    np.clip(img, HU_MIN, HU_MAX, out=img)
    return np.rint(img).astype(np.int16)
