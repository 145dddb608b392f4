"""What each labelled structure looks like in CT: a tissue kind per class name, and its mean HU per phase.

The phantoms' table (:mod:`arena_seg.data.phantoms.constants`) gives organs and vessels in the non-contrast,
arterial and portal-venous phases; this adds what a full-body label map holds beyond them (bone, muscle, lung,
bowel, cartilage, ...). Kinds, not names, carry the HU, so an unknown class name still gets a plausible soft-tissue
value (``soft``) rather than failing.
"""

from __future__ import annotations

import re

import numpy as np

from arena_seg.data.phantoms.constants import _HU_TABLE, PHASES

#: mean HU (non-contrast, arterial, portal-venous) of the kinds the phantom table lacks
_EXTRA_HU: dict[str, tuple[float, float, float]] = {
    "fat": (-100, -100, -100),
    "soft": (30, 40, 50),  # unlabelled soft tissue: mesentery, lymph nodes, abdominal wall
    "lung": (-850, -850, -850),
    "air": (-1000, -1000, -1000),
    "marrow": (200, 205, 210),  # cancellous bone at 1.5-3 mm (the shared real scan: vertebrae 160-190)
    "cortex": (700, 700, 700),
    "rib": (260, 260, 260),
    "cartilage": (110, 110, 115),
    "cord": (30, 30, 35),  # spinal canal: cord and CSF
    "fluid": (10, 10, 12),  # cysts, bladder, gallbladder
    "adrenal": (30, 60, 65),
    "prostate": (38, 55, 70),
    "thyroid": (100, 140, 130),
    "brain": (35, 40, 42),
    "esophagus": (40, 70, 80),
}

#: class-name patterns → kind, first match wins
_KINDS: tuple[tuple[str, str], ...] = (
    (r"^liver$", "liver"), (r"^spleen$", "spleen"), (r"^kidney_(left|right)$", "kidney"),
    (r"^kidney_cyst", "fluid"), (r"^pancreas$", "pancreas"), (r"^gallbladder$", "gallbladder"),
    (r"^urinary_bladder$", "bladder"), (r"^stomach$", "hollow"), (r"^(small_bowel|duodenum|colon)$", "hollow"),
    (r"^esophagus$", "esophagus"), (r"^trachea$", "air"), (r"^lung_", "lung"),
    (r"^aorta$", "aorta"), (r"^inferior_vena_cava$", "ivc"), (r"^portal_vein", "portal"),
    (r"(artery|arteries|brachiocephalic_trunk)", "artery"), (r"(vena|vein)", "vein"),
    (r"^heart$|atrial_appendage", "blood"), (r"^adrenal", "adrenal"), (r"^prostate$", "prostate"),
    (r"^thyroid", "thyroid"), (r"^brain$", "brain"), (r"^spinal_cord$", "cord"),
    (r"^rib_", "rib"), (r"^costal_cartilage", "cartilage"),
    (r"^(vertebrae_|sacrum|hip_|femur_|humerus_|scapula_|clavicula_|sternum|skull)", "bone"),
    (r"^(gluteus|autochthon|iliopsoas|muscle)", "muscle"),
)

#: kinds drawn with an inside/outside structure rather than one value
STRUCTURED = ("bone", "kidney", "hollow")


def kind_of(name: str) -> str:
    """The tissue kind of a class name (``soft`` when no pattern matches)."""
    for pattern, kind in _KINDS:
        if re.search(pattern, name):
            return kind
    return "soft"


def mean_hu(kind: str, phase: str) -> float:
    """Mean HU of ``kind`` in ``phase`` (one of :data:`PHASES`); bone is its marrow, kidney its cortex."""
    key = {"bone": "marrow", "kidney": "kidney_cortex", "hollow": "bowel_wall"}.get(kind, kind)
    table = _HU_TABLE.get(key) or _EXTRA_HU.get(key) or _EXTRA_HU["soft"]
    return float(table[PHASES.index(phase)])


def draw_hu(kind: str, phase: str, rng: np.random.Generator) -> float:
    """One structure's mean HU: the table's, with enhancement varied ±25 % and a ±8 HU scanner offset."""
    base = mean_hu(kind, "non_contrast")
    enhanced = mean_hu(kind, phase)
    return base + (enhanced - base) * rng.uniform(0.75, 1.25) + rng.normal(0, 8)


def output_ids(classes: dict[int, str], outputs: dict[str, int]) -> dict[int, int]:
    """{class id in the label map: output id} for the class names in ``outputs`` (others become 0)."""
    return {cid: outputs[name] for cid, name in classes.items() if name in outputs}
