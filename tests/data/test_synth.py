"""The SynthSeg-style generator: anatomy kept, tissue HU per phase, determinism, hybrids, RAS, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from arena_seg.data.synth import SynthOptions, spatial, synthesize, to_ras, totalseg_v2_classes
from arena_seg.data.synth.tissues import kind_of, mean_hu
from arena_seg.organs import PHANTOM_LABELS

REAL_CT = Path(__file__).resolve().parents[3] / "shared" / "data" / "real-ct" / "abdomen-pelvis-3mm"

TS = {name: cid for cid, name in totalseg_v2_classes().items()}
STILL = SynthOptions(rotate_deg=0, scale=(1.0, 1.0), shift_mm=0, elastic_mm=0, noise_hu=(0, 0), slice_mm=(0.6, 0.6),
                     p_table=0, p_arms=0, p_fov=0, p_crop_z=0, p_liver_lesion=0)


def _anatomy(shape=(48, 40, 24)) -> tuple[np.ndarray, np.ndarray]:
    """A tiny TotalSegmentator-style map at 3 mm: liver, spleen, a kidney, aorta, a vertebra, colon."""
    lab = np.zeros(shape, np.int16)
    lab[5:20, 12:30, 4:20] = TS["liver"]
    lab[30:40, 12:24, 8:18] = TS["spleen"]
    lab[28:36, 6:12, 4:12] = TS["kidney_left"]
    lab[22:25, 8:11, :] = TS["aorta"]
    lab[21:27, 3:8, 6:16] = TS["vertebrae_L1"]
    lab[10:30, 30:36, 2:10] = TS["colon"]
    return lab, np.diag([3.0, 3.0, 3.0, 1.0])


def test_organs_keep_their_place_and_get_the_phantom_ids():
    lab, aff = _anatomy()
    s = synthesize(lab, aff, totalseg_v2_classes(), seed=3, options=STILL)
    assert s.image.dtype == np.int16 and s.label.dtype == np.uint8 and s.image.shape == lab.shape
    assert set(np.unique(s.label)) == {0, *(PHANTOM_LABELS[n] for n in ("liver", "spleen", "kidney_left",
                                                                          "aorta"))}
    for name in ("liver", "spleen", "kidney_left", "aorta"):
        before, after = lab == TS[name], s.label == PHANTOM_LABELS[name]
        dice = 2 * (before & after).sum() / (before.sum() + after.sum())
        assert dice > 0.8, name  # no deformation asked: only the ±5 % per-axis scale remains


def test_tissues_have_ct_values_for_the_drawn_phase():
    lab, aff = _anatomy()
    for seed in range(4):
        s = synthesize(lab, aff, totalseg_v2_classes(), seed=seed, options=STILL)
        phase = s.meta["phase"]
        liver = np.median(s.image[s.label == PHANTOM_LABELS["liver"]])
        base, enhanced = mean_hu("liver", "non_contrast"), mean_hu("liver", phase)
        assert base - 30 < liver < base + 1.3 * (enhanced - base) + 30, (phase, liver)
        assert np.median(s.image[s.label == 0][:50]) < -900  # air in the corner outside the body
    bone = s.image[lab == TS["vertebrae_L1"]]
    assert np.median(bone) > 150  # marrow 200, cortex 450-1000


def test_same_seed_same_scan_other_seed_other_scan():
    lab, aff = _anatomy()
    a, b = (synthesize(lab, aff, totalseg_v2_classes(), seed=7) for _ in range(2))
    c = synthesize(lab, aff, totalseg_v2_classes(), seed=8)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.label, b.label) and a.meta == b.meta
    assert not np.array_equal(a.image, c.image)


def test_body_wall_surrounds_the_labelled_cavity():
    lab, _ = _anatomy()
    tissue = spatial.body_layers(lab, (3.0, 3.0, 3.0), np.random.default_rng(0))
    z = 10
    assert tissue[15, 20, z] == TS["liver"]
    assert tissue[0, 0, z] == 0  # air in the corner
    # walking out from the liver's edge: viscera/organs, then muscle, fat, skin, then air
    ray = list(tissue[:5, 20, z][::-1]) + list(tissue[5:6, 20, z])
    assert spatial.SUBCUT_FAT in tissue[:, 20, z] and spatial.WALL_MUSCLE in tissue[:, 20, z], ray


def test_hybrid_keeps_the_real_texture_and_adds_enhancement():
    lab, aff = _anatomy()
    rng = np.random.default_rng(0)
    image = np.where(lab > 0, 40.0, -1000.0) + rng.normal(0, 10, lab.shape)
    s = synthesize(lab, aff, totalseg_v2_classes(), seed=5, image=image, options=STILL)
    liver = np.median(s.image[s.label == PHANTOM_LABELS["liver"]])
    delta = mean_hu("liver", s.meta["phase"]) - mean_hu("liver", "non_contrast")
    assert s.meta["hybrid"] and abs(liver - (40 + delta)) < 0.3 * abs(delta) + 10


def test_unknown_names_are_soft_tissue_and_kinds_follow_names():
    assert kind_of("kidney_right") == "kidney" and kind_of("vertebrae_T3") == "bone"
    assert kind_of("iliac_artery_left") == "artery" and kind_of("something_new") == "soft"


def test_to_ras_reorders_an_lps_volume():
    arr = np.arange(24).reshape(2, 3, 4)
    lps = np.diag([-2.0, -3.0, 4.0, 1.0])
    out, aff = to_ras(arr, lps)
    assert nib.aff2axcodes(aff) == ("R", "A", "S")
    assert out[0, 0, 0] == arr[1, 2, 0]  # the same voxel, now at R-most/A-most corner first


@pytest.mark.skipif(not REAL_CT.is_dir(), reason="the shared real CT is not here")
def test_cli_writes_readable_scans_from_the_real_label_map(tmp_path):
    out = tmp_path / "syn"
    cmd = [sys.executable, "-m", "arena_seg.cli", "synth", "--label", str(REAL_CT / "label_full.nii.gz"),
           "--out", str(out), "--n", "3", "--seed", "4"]
    subprocess.run(cmd, check=True, capture_output=True)
    assert json.loads((out / "labels.json").read_text()) == PHANTOM_LABELS
    record = json.loads((out / "synth.json").read_text())
    assert sorted(record) == ["synth_000", "synth_001", "synth_002"]
    real = np.asarray(nib.load(REAL_CT / "label_full.nii.gz").dataobj)
    for name in record:
        img = nib.load(out / "images" / f"{name}.nii.gz")
        lab = np.asarray(nib.load(out / "labels" / f"{name}.nii.gz").dataobj)
        assert img.get_data_dtype() == np.int16 and lab.shape == img.shape
        crops = [e for e in record[name]["extras"] if e.startswith("z")]
        if crops:  # a shorter scan: its slices are the recorded run (the liver may be cut off)
            start, stop = map(int, crops[0][1:].split(":"))
            assert lab.shape[2] == stop - start and np.allclose(img.affine[:3, 3], nib.load(
                REAL_CT / "label_full.nii.gz").affine[:3, :3] @ [0, 0, start] + nib.load(
                REAL_CT / "label_full.nii.gz").affine[:3, 3])
            continue
        # the real liver (about 1.1 L), scaled by 0.85-1.15 (±5 % per axis)
        ratio = (lab == PHANTOM_LABELS["liver"]).sum() / (real == TS["liver"]).sum()
        assert 0.55 < ratio < 1.6
    bad = subprocess.run([*cmd[:-2], "--seed", "1", "--classes", str(tmp_path / "none.json")],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "--classes" in bad.stderr.strip().splitlines()[-1]


def test_convex_hull_fills_concavities_and_keeps_degenerate_masks():
    m = np.zeros((10, 10), bool)
    m[2:8, 2] = True
    m[7, 2:8] = True  # an L: its hull is the triangle (2,2)-(7,2)-(7,7)
    hull = spatial.convex_hull_2d(m)
    assert hull[m].all() and hull[5, 4] and not hull[3, 6] and not hull[0, 0]
    assert hull.sum() == sum(range(1, 7))  # 1 + 2 + ... + 6 pixel centres on or under the diagonal
    line = np.zeros((5, 5), bool)
    line[1:4, 2] = True
    assert np.array_equal(spatial.convex_hull_2d(line), line)
