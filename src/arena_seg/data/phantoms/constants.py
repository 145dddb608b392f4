"""Organ label ids, the base/novel organ split, contrast phases and the mean HU of every tissue."""

from __future__ import annotations

from arena_seg.organs import BASE_ORGANS, NOVEL_ORGANS, PHANTOM_LABELS  # noqa: F401  (re-exported)

PHASES: tuple[str, ...] = ("non_contrast", "arterial", "portal_venous")

HU_MIN, HU_MAX = -1024, 3071

# Mean HU per tissue for (non-contrast, arterial, portal-venous); each volume jitters the enhancement.
_HU_TABLE: dict[str, tuple[float, float, float]] = {
    "liver": (58, 74, 108),
    "spleen": (48, 118, 120),
    "kidney_cortex": (32, 190, 170),
    "kidney_medulla": (30, 80, 158),
    "aorta": (42, 300, 165),
    "ivc": (40, 95, 140),
    "ivc_low": (40, 55, 135),
    "portal": (40, 120, 178),
    "artery": (42, 280, 160),
    "vein": (40, 65, 140),
    "pancreas": (42, 118, 96),
    "gallbladder": (10, 10, 12),
    "bladder": (8, 8, 10),
    "bowel_wall": (38, 72, 92),
    "stomach_wall": (40, 78, 95),
    "muscle": (50, 55, 62),
    "myocardium": (45, 115, 102),
    "blood": (42, 260, 150),
    "hepatic_vessel": (38, 95, 165),
}

_AIR, _FAT, _LUNG = -1000.0, -100.0, -850.0
