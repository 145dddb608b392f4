"""The two foreign loaders against the originals' checkpoints, written down from the originals' own source.

Nothing here is derived from our networks: the key names, shapes and label orders below are transcribed from
- FSEFT (Silva-Rodriguez et al., github.com/jusiro/fewshot-finetuning): pretrain/models/model_pretrain.py (their
  SwinUNETR copy of MONAI 0.9: SwinTransformer with a PatchMerging after every stage, MONAI's PatchEmbed, MLPBlock,
  UnetrBasicBlock/UnetrUpBlock with res_block=True, and a 1x1x1 ``classifier``), main_pretrain.py (29 classes,
  feature size 48; ``torch.save(model.state_dict())`` of the DistributedDataParallel model, so every key starts
  with ``module.``) and pretrain/datasets/templates.py (UNIVERSAL_TEMPLATE, 1-based; the head has no background).
- MONAI Model Zoo wholeBody_ct_segmentation: configs/inference.json ``network_def`` (SegResNet, init_filters 32,
  blocks_down [1, 2, 2, 4], blocks_up [1, 1, 1], 105 outputs), configs/train.json (CheckpointSaver with save_dict
  {"model": network} and key_metric_filename model.pt: ignite saves the one object's bare state_dict) and
  configs/metadata.json (channel_def), with MONAI's SegResNet/ResBlock (GroupNorm(8) norms, bias-free convs).
"""

from __future__ import annotations

import warnings

import torch

from arena_seg.models import CheckpointWarning, get_spec, load_foundation

# ---- FSEFT -----------------------------------------------------------------------------------------------------
FSEFT_FEATURES, FSEFT_CLASSES, FSEFT_WINDOW = 48, 29, 7
FSEFT_DEPTHS, FSEFT_HEADS = (2, 2, 2, 2), (3, 6, 12, 24)
# (name, in channels, out channels) as multiples of the feature size (1/48: the CT channel)
FSEFT_ENCODERS = (("encoder1", 1 / 48, 1), ("encoder2", 1, 1), ("encoder3", 2, 2), ("encoder4", 4, 4),
                  ("encoder10", 16, 16))
FSEFT_DECODERS = (("decoder5", 16, 8), ("decoder4", 8, 4), ("decoder3", 4, 2), ("decoder2", 2, 1), ("decoder1", 1, 1))
# UNIVERSAL_TEMPLATE (FSEFT name, 1-based index) and the name arena-seg gives that organ
FSEFT_TEMPLATE = (
    ("spleen", 1, "spleen"), ("rkidney", 2, "kidney_right"), ("lkidney", 3, "kidney_left"), ("gall", 4, "gallbladder"),
    ("esophagus", 5, "esophagus"), ("liver", 6, "liver"), ("stomach", 7, "stomach"), ("aorta", 8, "aorta"),
    ("postcava", 9, "inferior_vena_cava"), ("psv", 10, "portal_vein_and_splenic_vein"), ("pancreas", 11, "pancreas"),
    ("radrenal", 12, "adrenal_gland_right"), ("ladrenal", 13, "adrenal_gland_left"), ("duodenum", 14, "duodenum"),
    ("bladder", 15, "urinary_bladder"), ("prost_ut", 16, "prostate_or_uterus"), ("liver_tumor", 17, "liver_tumor"),
    ("kidney_tumor", 18, "kidney_tumor"), ("kidney_cyst", 19, "kidney_cyst"), ("celiac_truck", 20, "celiac_trunk"),
    ("rlung", 21, "lung_right"), ("llung", 22, "lung_left"), ("bone", 23, "bone"), ("brain", 24, "brain"),
    ("lung_tumor", 25, "lung_tumor"), ("pancreas_tumor", 26, "pancreas_tumor"), ("hv", 27, "hepatic_vessel"),
    ("hvt", 28, "hepatic_vessel_tumor"), ("colon_tumor", 29, "colon_tumor"),
)  # fmt: skip


def fseft_checkpoint_layout() -> dict[str, tuple[int, ...]]:
    """Key -> shape of ``fseft.pth`` as FSEFT's main_pretrain.py writes it (DDP ``module.`` prefix)."""
    f, w = FSEFT_FEATURES, FSEFT_WINDOW
    layout: dict[str, tuple[int, ...]] = {"swinViT.patch_embed.proj.weight": (f, 1, 2, 2, 2),
                                          "swinViT.patch_embed.proj.bias": (f,)}
    for stage, (depth, heads) in enumerate(zip(FSEFT_DEPTHS, FSEFT_HEADS, strict=True)):
        dim = f * 2**stage
        for block in range(depth):
            root = f"swinViT.layers{stage + 1}.0.blocks.{block}."
            layout.update({
                root + "norm1.weight": (dim,), root + "norm1.bias": (dim,),
                root + "attn.relative_position_bias_table": ((2 * w - 1) ** 3, heads),
                root + "attn.relative_position_index": (w**3, w**3),
                root + "attn.qkv.weight": (3 * dim, dim), root + "attn.qkv.bias": (3 * dim,),
                root + "attn.proj.weight": (dim, dim), root + "attn.proj.bias": (dim,),
                root + "norm2.weight": (dim,), root + "norm2.bias": (dim,),
                root + "mlp.linear1.weight": (4 * dim, dim), root + "mlp.linear1.bias": (4 * dim,),
                root + "mlp.linear2.weight": (dim, 4 * dim), root + "mlp.linear2.bias": (dim,),
            })  # fmt: skip
        down = f"swinViT.layers{stage + 1}.0.downsample."
        layout.update({down + "reduction.weight": (2 * dim, 8 * dim), down + "norm.weight": (8 * dim,),
                       down + "norm.bias": (8 * dim,)})
    for name, cin, cout in FSEFT_ENCODERS:  # UnetResBlock; InstanceNorm without affine has no parameters
        cin, cout = round(cin * f), round(cout * f)
        layout[f"{name}.layer.conv1.conv.weight"] = (cout, cin, 3, 3, 3)
        layout[f"{name}.layer.conv2.conv.weight"] = (cout, cout, 3, 3, 3)
        if cin != cout:
            layout[f"{name}.layer.conv3.conv.weight"] = (cout, cin, 1, 1, 1)
    for name, cin, cout in FSEFT_DECODERS:  # transposed conv, then a UnetResBlock on [upsampled, skip]
        cin, cout = cin * f, cout * f
        layout[f"{name}.transp_conv.conv.weight"] = (cin, cout, 2, 2, 2)
        layout[f"{name}.conv_block.conv1.conv.weight"] = (cout, 2 * cout, 3, 3, 3)
        layout[f"{name}.conv_block.conv2.conv.weight"] = (cout, cout, 3, 3, 3)
        layout[f"{name}.conv_block.conv3.conv.weight"] = (cout, 2 * cout, 1, 1, 1)
    layout["classifier.weight"] = (FSEFT_CLASSES, f, 1, 1, 1)
    layout["classifier.bias"] = (FSEFT_CLASSES,)
    return {"module." + key: shape for key, shape in layout.items()}


def fseft_to_monai(key: str) -> str:
    """Where each FSEFT key belongs in MONAI's SwinUNETR: no DDP prefix, ``classifier`` is ``out.conv.conv``."""
    key = key.removeprefix("module.")
    return "out.conv.conv." + key.removeprefix("classifier.") if key.startswith("classifier.") else key


def _words(text: str) -> list[str]:
    return text.split()


# ---- MONAI wholeBody_ct_segmentation -----------------------------------------------------------------------------
WB_FILTERS, WB_DOWN, WB_UP, WB_CLASSES = 32, (1, 2, 2, 4), (1, 1, 1), 105
WB_CHANNEL_DEF = _words(
    "background spleen kidney_right kidney_left gallbladder liver stomach aorta inferior_vena_cava "
    "portal_vein_and_splenic_vein pancreas adrenal_gland_right adrenal_gland_left lung_upper_lobe_left "
    "lung_lower_lobe_left lung_upper_lobe_right lung_middle_lobe_right lung_lower_lobe_right vertebrae_L5 "
    "vertebrae_L4 vertebrae_L3 vertebrae_L2 vertebrae_L1 vertebrae_T12 vertebrae_T11 vertebrae_T10 vertebrae_T9 "
    "vertebrae_T8 vertebrae_T7 vertebrae_T6 vertebrae_T5 vertebrae_T4 vertebrae_T3 vertebrae_T2 vertebrae_T1 "
    "vertebrae_C7 vertebrae_C6 vertebrae_C5 vertebrae_C4 vertebrae_C3 vertebrae_C2 vertebrae_C1 esophagus trachea "
    "heart_myocardium heart_atrium_left heart_ventricle_left heart_atrium_right heart_ventricle_right "
    "pulmonary_artery brain iliac_artery_left iliac_artery_right iliac_vena_left iliac_vena_right small_bowel "
    "duodenum colon rib_left_1 rib_left_2 rib_left_3 rib_left_4 rib_left_5 rib_left_6 rib_left_7 rib_left_8 "
    "rib_left_9 rib_left_10 rib_left_11 rib_left_12 rib_right_1 rib_right_2 rib_right_3 rib_right_4 rib_right_5 "
    "rib_right_6 rib_right_7 rib_right_8 rib_right_9 rib_right_10 rib_right_11 rib_right_12 humerus_left "
    "humerus_right scapula_left scapula_right clavicula_left clavicula_right femur_left femur_right hip_left "
    "hip_right sacrum face gluteus_maximus_left gluteus_maximus_right gluteus_medius_left gluteus_medius_right "
    "gluteus_minimus_left gluteus_minimus_right autochthon_left autochthon_right iliopsoas_left iliopsoas_right "
    "urinary_bladder"
)


def _res_block(root: str, c: int) -> dict[str, tuple[int, ...]]:
    """MONAI segresnet_block.ResBlock: GroupNorm, conv, GroupNorm, conv (3x3x3, no bias)."""
    return {root + "norm1.weight": (c,), root + "norm1.bias": (c,), root + "norm2.weight": (c,),
            root + "norm2.bias": (c,), root + "conv1.conv.weight": (c, c, 3, 3, 3),
            root + "conv2.conv.weight": (c, c, 3, 3, 3)}


def wholebody_checkpoint_layout() -> dict[str, tuple[int, ...]]:
    """Key -> shape of the bundle's models/model.pt (the SegResNet's bare state_dict, as CheckpointSaver saves it)."""
    f = WB_FILTERS
    layout: dict[str, tuple[int, ...]] = {"convInit.conv.weight": (f, 1, 3, 3, 3)}
    for i, blocks in enumerate(WB_DOWN):  # Sequential(strided conv or Identity, ResBlock * blocks)
        c = f * 2**i
        if i > 0:
            layout[f"down_layers.{i}.0.conv.weight"] = (c, c // 2, 3, 3, 3)
        for j in range(1, blocks + 1):
            layout.update(_res_block(f"down_layers.{i}.{j}.", c))
    for i, blocks in enumerate(WB_UP):  # up_samples: 1x1x1 conv then parameter-free upsampling
        c = f * 2 ** (len(WB_UP) - i)
        layout[f"up_samples.{i}.0.conv.weight"] = (c // 2, c, 1, 1, 1)
        for j in range(blocks):
            layout.update(_res_block(f"up_layers.{i}.{j}.", c // 2))
    layout.update({"conv_final.0.weight": (f,), "conv_final.0.bias": (f,),
                   "conv_final.2.conv.weight": (WB_CLASSES, f, 1, 1, 1), "conv_final.2.conv.bias": (WB_CLASSES,)})
    return layout


def _marked_state(layout: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """A tensor of each shape, filled with its own number (a key loaded into the wrong place shows)."""
    return {key: torch.full(shape, i, dtype=torch.int64 if key.endswith("relative_position_index") else torch.float32)
            for i, (key, shape) in enumerate(layout.items())}


def test_fseft_checkpoint_of_the_original_layout_loads_every_key(tmp_path):
    state = _marked_state(fseft_checkpoint_layout())
    torch.save(state, tmp_path / "fseft.pth")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CheckpointWarning)
        model, spec = load_foundation("fseft-swinunetr", tmp_path / "fseft.pth")
    assert not [w for w in caught if issubclass(w.category, CheckpointWarning)]  # every key has a place
    loaded = model.state_dict()
    assert set(loaded) == {fseft_to_monai(k) for k in state}  # both ways: no network key without a source
    for key, value in state.items():
        assert torch.equal(loaded[fseft_to_monai(key)], value), key
    assert model.get_submodule(spec.head).weight.shape == (FSEFT_CLASSES, FSEFT_FEATURES, 1, 1, 1)


def test_fseft_labels_follow_the_universal_template():
    spec = get_spec("fseft-swinunetr")
    assert spec.background_channel is None and spec.activation == "sigmoid"  # 29 sigmoids, no background
    assert spec.labels == {ours: index - 1 for _, index, ours in FSEFT_TEMPLATE}
    assert [index for _, index, _ in FSEFT_TEMPLATE] == list(range(1, FSEFT_CLASSES + 1))


def test_wholebody_bundle_checkpoint_loads_every_key(tmp_path):
    state = _marked_state(wholebody_checkpoint_layout())
    (tmp_path / "models").mkdir()
    torch.save(state, tmp_path / "models" / "model.pt")
    model, spec = load_foundation("monai-wholebody", tmp_path)
    loaded = model.state_dict()
    assert set(loaded) == set(state)
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key
    assert spec.head == "conv_final.2.conv" and model.get_submodule(spec.head).out_channels == WB_CLASSES


def test_wholebody_labels_follow_the_channel_def():
    spec = get_spec("monai-wholebody")
    assert len(WB_CHANNEL_DEF) == WB_CLASSES and spec.background_channel == 0
    assert spec.labels == {name: i for i, name in enumerate(WB_CHANNEL_DEF) if i > 0}
