"""Label templates of the foundation networks: organ name -> output channel of the network's head.

Names follow TotalSegmentator spelling where one exists, so the same organ has the same name in every entry.
"""

from __future__ import annotations

from arena_seg.organs import BASE_ORGANS, PHANTOM_LABELS

# The embedded `default` network: channel 0 is background (softmax over 1 + 6 channels).
DEFAULT_LABELS: dict[str, int] = {name: PHANTOM_LABELS[name] for name in BASE_ORGANS}

# FSEFT universal template, as written in jusiro/fewshot-finetuning pretrain/datasets/templates.py
# (UNIVERSAL_TEMPLATE, 1-based). The pre-trained head has 29 outputs and NO background channel: it is trained
# with a per-class sigmoid + binary Dice (main_pretrain.py), and fseft/modeling/heads.py reads the row of organ
# i as `classifier.weight[i - 1]`. So output channel = template index - 1.
FSEFT_UNIVERSAL_TEMPLATE: dict[str, int] = {
    "spleen": 1, "rkidney": 2, "lkidney": 3, "gall": 4, "esophagus": 5, "liver": 6, "stomach": 7,
    "aorta": 8, "postcava": 9, "psv": 10, "pancreas": 11, "radrenal": 12, "ladrenal": 13,
    "duodenum": 14, "bladder": 15, "prost_ut": 16, "liver_tumor": 17, "kidney_tumor": 18,
    "kidney_cyst": 19, "celiac_truck": 20, "rlung": 21, "llung": 22, "bone": 23, "brain": 24,
    "lung_tumor": 25, "pancreas_tumor": 26, "hv": 27, "hvt": 28, "colon_tumor": 29,
}  # fmt: skip

# Their short names -> our (TotalSegmentator-style) names; names not listed are kept as they are.
FSEFT_NAME_MAP: dict[str, str] = {
    "rkidney": "kidney_right",
    "lkidney": "kidney_left",
    "gall": "gallbladder",
    "postcava": "inferior_vena_cava",
    "psv": "portal_vein_and_splenic_vein",
    "radrenal": "adrenal_gland_right",
    "ladrenal": "adrenal_gland_left",
    "bladder": "urinary_bladder",
    "prost_ut": "prostate_or_uterus",
    "celiac_truck": "celiac_trunk",
    "rlung": "lung_right",
    "llung": "lung_left",
    "hv": "hepatic_vessel",
    "hvt": "hepatic_vessel_tumor",
}

# organ -> output channel of the FSEFT head (0-based, no background channel).
FSEFT_LABELS: dict[str, int] = {FSEFT_NAME_MAP.get(k, k): v - 1 for k, v in FSEFT_UNIVERSAL_TEMPLATE.items()}

# MONAI Model Zoo wholeBody_ct_segmentation, configs/metadata.json network_data_format.outputs.pred.channel_def:
# 105 channels, 0 = background, 1..104 = TotalSegmentator (v1) classes in this order.
_WHOLEBODY_NAMES = (
    "spleen", "kidney_right", "kidney_left", "gallbladder", "liver", "stomach", "aorta", "inferior_vena_cava",
    "portal_vein_and_splenic_vein", "pancreas", "adrenal_gland_right", "adrenal_gland_left",
    "lung_upper_lobe_left", "lung_lower_lobe_left", "lung_upper_lobe_right", "lung_middle_lobe_right",
    "lung_lower_lobe_right",
    "vertebrae_L5", "vertebrae_L4", "vertebrae_L3", "vertebrae_L2", "vertebrae_L1",
    "vertebrae_T12", "vertebrae_T11", "vertebrae_T10", "vertebrae_T9", "vertebrae_T8", "vertebrae_T7",
    "vertebrae_T6", "vertebrae_T5", "vertebrae_T4", "vertebrae_T3", "vertebrae_T2", "vertebrae_T1",
    "vertebrae_C7", "vertebrae_C6", "vertebrae_C5", "vertebrae_C4", "vertebrae_C3", "vertebrae_C2", "vertebrae_C1",
    "esophagus", "trachea", "heart_myocardium", "heart_atrium_left", "heart_ventricle_left", "heart_atrium_right",
    "heart_ventricle_right", "pulmonary_artery", "brain", "iliac_artery_left", "iliac_artery_right",
    "iliac_vena_left", "iliac_vena_right", "small_bowel", "duodenum", "colon",
    *(f"rib_left_{i}" for i in range(1, 13)),
    *(f"rib_right_{i}" for i in range(1, 13)),
    "humerus_left", "humerus_right", "scapula_left", "scapula_right", "clavicula_left", "clavicula_right",
    "femur_left", "femur_right", "hip_left", "hip_right", "sacrum", "face",
    "gluteus_maximus_left", "gluteus_maximus_right", "gluteus_medius_left", "gluteus_medius_right",
    "gluteus_minimus_left", "gluteus_minimus_right", "autochthon_left", "autochthon_right",
    "iliopsoas_left", "iliopsoas_right", "urinary_bladder",
)  # fmt: skip
WHOLEBODY_LABELS: dict[str, int] = {name: i for i, name in enumerate(_WHOLEBODY_NAMES, start=1)}
