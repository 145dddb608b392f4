"""Organ names and label ids shared by the phantoms and the embedded default network it was trained on."""

from __future__ import annotations

PHANTOM_LABELS: dict[str, int] = {
    "liver": 1,
    "spleen": 2,
    "kidney_right": 3,
    "kidney_left": 4,
    "aorta": 5,
    "stomach": 6,
    "pancreas": 7,
    "gallbladder": 8,
    "inferior_vena_cava": 9,
    "urinary_bladder": 10,
}
#: seen by the default network in pretraining
BASE_ORGANS: tuple[str, ...] = ("liver", "spleen", "kidney_right", "kidney_left", "aorta", "stomach")
#: never seen in pretraining: what few-shot adaptation is for
NOVEL_ORGANS: tuple[str, ...] = ("pancreas", "gallbladder", "inferior_vena_cava", "urinary_bladder")
