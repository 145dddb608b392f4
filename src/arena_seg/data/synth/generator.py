"""SynthSeg-style synthetic CT from a real label map (Billot et al., 2023), with CT's physics instead of MRI's.

Every class of the label map (and the body wall, fat and viscera around them) gets its own HU drawn for a random
contrast phase; the map is warped (affine + elastic) first; bones get cortex and marrow, kidneys cortex and
medulla, bowel and stomach a wall around gas, fluid, faeces or oral contrast; texture, partial-volume blur of a
random slice thickness (0.6-5 mm) and noise follow; a table, arms, a reconstruction circle and a shorter Z range
are added at random. With the real ``image`` (``hybrid``) the scan's own voxels are warped instead, and only the
contrast enhancement of each structure is added: real texture in phases the scan was not taken in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from arena_seg.data.phantoms.constants import PHASES
from arena_seg.organs import PHANTOM_LABELS

from . import spatial
from .tissues import STRUCTURED, draw_hu, kind_of, mean_hu, output_ids


@dataclass
class Synthetic:
    """One synthetic scan: ``image`` int16 HU and ``label`` uint8 (X, Y, Z), RAS ``affine``, what was drawn."""

    image: np.ndarray
    label: np.ndarray
    affine: np.ndarray
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SynthOptions:
    """Ranges the generator draws from (defaults: the foundation network's training set)."""

    rotate_deg: float = 10.0
    scale: tuple[float, float] = (0.85, 1.15)
    shift_mm: float = 12.0
    elastic_mm: float = 8.0
    slice_mm: tuple[float, float] = (0.6, 5.0)
    noise_hu: tuple[float, float] = (3.0, 25.0)
    p_table: float = 0.7
    p_arms: float = 0.3
    p_fov: float = 0.25
    p_crop_z: float = 0.5
    p_oral_contrast: float = 0.15
    p_liver_lesion: float = 0.3


def synthesize(label: np.ndarray, affine: np.ndarray, classes: dict[int, str], seed: int,
               image: np.ndarray | None = None, source_phase: str = "non_contrast",
               options: SynthOptions | None = None, outputs: dict[str, int] | None = None) -> Synthetic:
    """A synthetic CT of the anatomy in ``label`` ((X, Y, Z) class ids named by ``classes``, RAS ``affine``).

    ``image`` (the scan ``label`` was drawn on, HU, ``source_phase``) makes a hybrid: its voxels warped, each
    structure's enhancement added. ``outputs`` ({organ name: id}, default the phantoms' ids) names the organs the
    returned label keeps; other classes become background.
    """
    opts = options or SynthOptions()
    rng = np.random.default_rng(seed)
    spacing = tuple(float(s) for s in np.linalg.norm(affine[:3, :3], axis=0))
    phase = str(rng.choice(PHASES))
    tissue = spatial.body_layers(np.asarray(label, np.int16), spacing, rng)
    coords = spatial.random_coords(tissue.shape, spacing, rng, opts.rotate_deg, opts.scale, opts.shift_mm,
                                   opts.elastic_mm)
    warped = spatial.warp(tissue, coords, order=0, fill=0).astype(np.int16)
    names = {**classes, spatial.VISCERA: "viscera", spatial.WALL_MUSCLE: "muscle", spatial.SUBCUT_FAT: "fat",
             spatial.SKIN: "skin"}
    if image is None:
        hu = _paint(warped, names, phase, spacing, rng, opts)
    else:
        hu = spatial.warp(np.asarray(image, np.float32), coords, order=1, fill=-1024.0)
        hu += _enhancement(warped, names, source_phase, phase, rng)
    thickness = float(rng.uniform(*opts.slice_mm))
    hu = _blur_and_noise(hu, spacing, thickness, rng, opts, hybrid=image is not None)
    body = warped > 0
    extras = []
    if rng.random() < opts.p_table:
        spatial.add_table(hu, body, rng)
        extras.append("table")
    if rng.random() < opts.p_arms:
        spatial.add_arms(hu, spacing, body, rng)
        extras.append("arms")
    lut = np.zeros(max(names) + 1, np.uint8)
    for cid, oid in output_ids(classes, outputs or PHANTOM_LABELS).items():
        lut[cid] = oid
    out_label = lut[warped]
    if rng.random() < opts.p_fov:
        spatial.circular_fov(hu, out_label, spacing, rng)
        extras.append("fov")
    affine = np.asarray(affine, float).copy()
    if rng.random() < opts.p_crop_z:
        zs = spatial.crop_z(hu.shape, rng)
        hu, out_label = hu[:, :, zs], out_label[:, :, zs]
        affine[:3, 3] = affine[:3, :3] @ np.array([0, 0, zs.start]) + affine[:3, 3]
        extras.append(f"z{zs.start}:{zs.stop}")
    image_out = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)
    meta = {"seed": int(seed), "phase": phase, "slice_mm": round(thickness, 2), "hybrid": image is not None,
            "extras": extras}
    return Synthetic(image=image_out, label=out_label, affine=affine, meta=meta)


def _paint(tissue: np.ndarray, names: dict[int, str], phase: str, spacing, rng, opts: SynthOptions) -> np.ndarray:
    """HU for every voxel of the warped tissue map (no blur or noise yet)."""
    kinds = {cid: _kind(name) for cid, name in names.items()}
    lut = np.full(max(names) + 1, -1000.0, np.float32)  # air outside the body (id 0)
    for cid, kind in kinds.items():
        lut[cid] = draw_hu(kind, phase, rng)
    hu = lut[tissue]
    _viscera(hu, tissue == spatial.VISCERA, rng)
    for kind in STRUCTURED:
        ids = [cid for cid, k in kinds.items() if k == kind]
        if ids:
            _structured(hu, tissue, ids, kind, phase, rng, opts)
    liver = [cid for cid, name in names.items() if name == "liver"]
    if liver and rng.random() < opts.p_liver_lesion:
        _lesions(hu, tissue == liver[0], spacing, rng)
    return hu


def _kind(name: str) -> str:
    return {"viscera": "soft", "skin": "soft", "fat": "fat"}.get(name) or kind_of(name)


def _smooth_noise(shape, sigma: float, rng) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return field / (field.std() + 1e-6)


def _viscera(hu: np.ndarray, mask: np.ndarray, rng) -> None:
    """Mesenteric fat with soft-tissue strands and loops, and a few gas bubbles."""
    if not mask.any():
        return
    noise = _smooth_noise(hu.shape, rng.uniform(1.0, 2.5), rng)
    fat_share = rng.uniform(0.35, 0.8)
    cut = np.quantile(noise[mask], fat_share)
    soft = rng.uniform(15, 45)
    hu[mask] = np.where(noise[mask] < cut, rng.uniform(-115, -85), soft)
    hu[mask & (noise > np.quantile(noise[mask], 0.995))] = -1000.0


def _structured(hu, tissue, ids, kind, phase, rng, opts) -> None:
    """Bone cortex, kidney cortex/medulla and hollow-organ walls and contents, inside each structure."""
    for cid in ids:
        mask = tissue == cid
        if not mask.any():
            continue
        box = tuple(slice(max(0, s.start - 1), s.stop + 1) for s in ndimage.find_objects(mask.astype(np.uint8))[0])
        m = mask[box]
        inner = ndimage.binary_erosion(m, iterations=1)
        sub = hu[box]
        if kind == "bone":
            sub[m & ~inner] = rng.uniform(450, 1000)
        elif kind == "kidney":
            medulla = ndimage.binary_erosion(m, iterations=2)
            base = mean_hu("kidney_medulla", "non_contrast")
            sub[medulla] = base + (mean_hu("kidney_medulla", phase) - base) * rng.uniform(0.75, 1.25)
        else:  # hollow: wall around the lumen's contents
            noise = _smooth_noise(m.shape, rng.uniform(0.8, 2.0), rng)
            gas = noise > np.quantile(noise, 1 - rng.uniform(0.0, 0.5))
            oral = rng.random() < opts.p_oral_contrast
            content = np.where(gas, -1000.0, rng.uniform(150, 400) if oral else rng.uniform(-60, 30))
            content += 25 * _smooth_noise(m.shape, 0.7, rng)  # faeces and food are mottled
            sub[inner] = content[inner]


def _lesions(hu: np.ndarray, liver: np.ndarray, spacing, rng) -> None:
    """1-3 round hypodense lesions (cysts, metastases) 6-30 mm across, inside the liver."""
    pts = np.argwhere(liver)
    grid = np.indices(hu.shape, dtype=np.float32)
    for _ in range(int(rng.integers(1, 4))):
        c = pts[rng.integers(len(pts))]
        r = rng.uniform(3, 15)
        box = tuple(slice(max(0, int(c[i] - r / spacing[i]) - 1), int(c[i] + r / spacing[i]) + 2) for i in range(3))
        d2 = sum(((grid[i][box] - c[i]) * spacing[i]) ** 2 for i in range(3))
        sub = hu[box]
        sub[(d2 <= r * r) & liver[box]] = rng.uniform(0, 45)


def _enhancement(tissue: np.ndarray, names: dict[int, str], source: str, phase: str, rng) -> np.ndarray:
    """HU to add to a real scan taken in ``source`` phase so each structure looks as in ``phase``."""
    lut = np.zeros(max(names) + 1, np.float32)
    for cid, name in names.items():
        kind = _kind(name)
        lut[cid] = (mean_hu(kind, phase) - mean_hu(kind, source)) * rng.uniform(0.75, 1.25)
    return lut[tissue]


def _blur_and_noise(hu: np.ndarray, spacing, thickness: float, rng, opts: SynthOptions, hybrid: bool) -> np.ndarray:
    """Partial volume (in-plane 0.6-1.2 mm FWHM, through-plane the slice thickness), texture, quantum noise."""
    if not hybrid:
        hu += rng.uniform(0, 12) * _smooth_noise(hu.shape, 1.5, rng)
    fwhm = np.array([rng.uniform(0.6, 1.2), rng.uniform(0.6, 1.2), thickness])
    sigma = np.maximum(fwhm / 2.355 / np.asarray(spacing), 0.0)
    if not hybrid:
        sigma = np.maximum(sigma, 0.35)  # label maps have hard edges; real boundaries never do
    hu = ndimage.gaussian_filter(hu, sigma)
    noise = rng.uniform(*opts.noise_hu) * (0.5 if hybrid else 1.0)
    hu += rng.normal(0, noise, hu.shape).astype(np.float32)
    return hu
