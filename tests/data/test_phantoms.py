"""Synthetic CT phantoms: determinism, geometry, anatomy, HU, organ volumes, speed and the files written."""

from __future__ import annotations

import json
import time

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from arena_seg.data.phantoms import (
    BASE_ORGANS,
    NOVEL_ORGANS,
    PHANTOM_LABELS,
    PHASES,
    default_spacing,
    label_volumes_ml,
    make_phantom,
    phantom_seed,
    write_phantoms,
)

SPACING = (3.0, 3.0, 3.0)
COARSE = (6.0, 6.0, 6.0)
TINY = (8.0, 8.0, 8.0)
VOLUME_RANGES_ML = {
    "liver": (1200, 2000),
    "spleen": (150, 300),
    "kidney_right": (120, 200),
    "kidney_left": (120, 200),
    "pancreas": (60, 100),
    "gallbladder": (20, 50),
    "urinary_bladder": (100, 400),
    "aorta": (40, 160),
    "inferior_vena_cava": (40, 180),
    "stomach": (150, 700),
}


@pytest.fixture(scope="module")
def phantoms():
    return [make_phantom(seed, spacing=SPACING) for seed in (0, 1)]


def _world(ph, mask: np.ndarray) -> np.ndarray:
    """RAS world coordinates (N, 3) of the voxels of ``mask``."""
    ijk = np.argwhere(mask).astype(float)
    return ijk @ ph.affine[:3, :3].T + ph.affine[:3, 3]


def _centroid(ph, organ: str) -> np.ndarray:
    return _world(ph, ph.label == PHANTOM_LABELS[organ]).mean(0)


def test_label_table():
    assert PHANTOM_LABELS == {"liver": 1, "spleen": 2, "kidney_right": 3, "kidney_left": 4, "aorta": 5, "stomach": 6,
                              "pancreas": 7, "gallbladder": 8, "inferior_vena_cava": 9, "urinary_bladder": 10}
    assert BASE_ORGANS == ("liver", "spleen", "kidney_right", "kidney_left", "aorta", "stomach")
    assert NOVEL_ORGANS == ("pancreas", "gallbladder", "inferior_vena_cava", "urinary_bladder")
    assert set(BASE_ORGANS) | set(NOVEL_ORGANS) == set(PHANTOM_LABELS)


def test_same_seed_same_volume_other_seed_other_volume():
    a = make_phantom(5, spacing=TINY)
    b = make_phantom(5, spacing=TINY)
    c = make_phantom(6, spacing=TINY)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.label, b.label)
    assert np.array_equal(a.affine, b.affine) and a.meta == b.meta
    assert a.image.shape != c.image.shape or not np.array_equal(a.image, c.image)
    assert a.label.shape != c.label.shape or not np.array_equal(a.label, c.label)


def test_same_patient_at_any_spacing_and_phase(phantoms):
    fine = phantoms[0]
    coarse = make_phantom(0, spacing=COARSE)
    v_fine, v_coarse = label_volumes_ml(fine.label, fine.spacing), label_volumes_ml(coarse.label, coarse.spacing)
    for organ in PHANTOM_LABELS:
        assert v_coarse[organ] == pytest.approx(v_fine[organ], rel=0.15), organ
    assert coarse.meta["phase"] == fine.meta["phase"]
    # forcing the phase changes the contrast only: same labels, and the aorta follows the phase
    aorta_hu = {}
    tiny = make_phantom(0, spacing=TINY)
    for phase in PHASES:
        ph = tiny if phase == tiny.meta["phase"] else make_phantom(0, spacing=TINY, phase=phase)
        assert np.array_equal(ph.label, tiny.label)
        aorta_hu[phase] = float(ph.image[ph.label == PHANTOM_LABELS["aorta"]].mean())
    assert aorta_hu["arterial"] > aorta_hu["portal_venous"] > aorta_hu["non_contrast"]
    with pytest.raises(ValueError):
        make_phantom(0, spacing=TINY, phase="delayed")
    with pytest.raises(ValueError):
        make_phantom(0, spacing=(3.0, -1.0, 3.0))


def test_arrays_and_ras_geometry(phantoms):
    for ph in phantoms:
        assert ph.image.dtype == np.int16 and ph.label.dtype == np.uint8
        assert ph.image.shape == ph.label.shape and ph.image.ndim == 3
        assert nib.aff2axcodes(ph.affine) == ("R", "A", "S")
        assert np.allclose(np.diag(ph.affine)[:3], ph.spacing) and ph.spacing == SPACING
        extent = np.array(ph.image.shape) * np.array(ph.spacing)
        assert 355 <= extent[0] <= 405 and 355 <= extent[1] <= 405, extent
        assert 325 <= extent[2] <= 415, extent
        assert ph.image.min() >= -1024 and ph.image.max() <= 3071
        assert set(np.unique(ph.label)) == {0, *PHANTOM_LABELS.values()}
        assert ph.meta["phase"] in PHASES


def test_default_spacing_is_varied_and_anisotropic():
    spacings = {default_spacing(s) for s in range(40)}
    assert len(spacings) > 20
    for sx, sy, sz in spacings:
        assert sx == sy and 1.3 <= sx <= 1.7 and sz in (2.5, 3.0, 3.75, 5.0)
    assert len({sz for _, _, sz in spacings}) >= 3


def test_generation_is_fast():
    make_phantom(0, spacing=TINY)  # warm-up (imports, caches)
    wall, cpu = time.perf_counter(), time.process_time()
    ph = make_phantom(7, spacing=SPACING)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"\nmake_phantom at 3 mm, shape {ph.image.shape}: {wall:.2f} s wall, {cpu:.2f} s CPU")
    # typically ~0.5 s; CPU time is what a busy shared machine does not inflate (much), wall time is a backstop
    assert cpu < 3.0
    assert wall < 30.0


@pytest.mark.parametrize("index", [0, 1])
def test_every_organ_present_with_a_plausible_volume(phantoms, index):
    ph = phantoms[index]
    volumes = label_volumes_ml(ph.label, ph.spacing)
    for organ, (lo, hi) in VOLUME_RANGES_ML.items():
        assert lo <= volumes[organ] <= hi, f"{organ}: {volumes[organ]:.0f} mL not in [{lo}, {hi}]"
    # each organ is essentially one piece
    for organ, i in PHANTOM_LABELS.items():
        sizes = np.bincount(ndimage.label(ph.label == i)[0].ravel())[1:]
        assert sizes.max() >= 0.9 * sizes.sum(), organ


@pytest.mark.parametrize("index", [0, 1])
def test_anatomical_sides(phantoms, index):
    ph = phantoms[index]
    assert nib.aff2axcodes(ph.affine)[0] == "R"  # so +x in world is the patient's right
    c = {organ: _centroid(ph, organ) for organ in PHANTOM_LABELS}
    assert c["liver"][0] > c["spleen"][0] + 80  # liver right, spleen left
    assert c["kidney_right"][0] > c["kidney_left"][0] + 100
    assert c["inferior_vena_cava"][0] > c["aorta"][0]  # IVC right of the aorta
    assert c["stomach"][0] < c["liver"][0]
    assert c["gallbladder"][0] > c["aorta"][0] + 20  # gallbladder right of the midline
    assert c["liver"][2] > c["kidney_right"][2] > c["urinary_bladder"][2]  # craniocaudal order
    assert c["spleen"][1] < c["stomach"][1]  # spleen posterior to the stomach
    assert c["pancreas"][1] > c["aorta"][1]  # pancreas anterior to the aorta
    # bone of the spine lies posterior to the aorta
    aorta = ph.label == PHANTOM_LABELS["aorta"]
    ks = np.nonzero(aorta.any(axis=(0, 1)))[0]
    x_ao = c["aorta"][0]
    bone = ph.image > 300
    bone[:, :, : ks.min()] = False
    bone[:, :, ks.max() + 1:] = False
    pts = _world(ph, bone)
    near = pts[np.abs(pts[:, 0] - x_ao) < 25]
    assert len(near) > 100
    assert np.median(near[:, 1]) < c["aorta"][1] - 15
    # lungs (air inside the body) at the top, far above the bladder
    air = ph.image < -600
    lab, n = ndimage.label(air)
    border = np.unique(np.concatenate([lab[0].ravel(), lab[-1].ravel(), lab[:, 0].ravel(), lab[:, -1].ravel()]))
    inside = air & ~np.isin(lab, border)
    top = np.zeros_like(inside)
    top[:, :, -4:] = True
    lungs = inside & top
    voxel_ml = float(np.prod(ph.spacing)) / 1000
    assert lungs.sum() * voxel_ml > 20
    assert _world(ph, lungs)[:, 2].mean() > c["urinary_bladder"][2] + 200


@pytest.mark.parametrize("index", [0, 1])
def test_hounsfield_units(phantoms, index):
    ph = phantoms[index]
    img, lab = ph.image.astype(float), ph.label
    # fat is the commonest soft value: a histogram peak near -100 HU
    body = ndimage.binary_fill_holes(img > -500, structure=np.ones((3, 3, 1), bool))
    hist, edges = np.histogram(img[body], bins=np.arange(-300, 1, 10))
    assert -130 <= edges[np.argmax(hist)] + 5 <= -70
    assert (img[body] > 200).sum() * np.prod(ph.spacing) / 1000 > 100  # > 100 mL of bone
    assert img[~body].mean() < -900  # air around the patient (and the table)

    def mean(organ):
        return float(img[lab == PHANTOM_LABELS[organ]].mean())

    assert 40 <= mean("liver") <= 140
    assert 30 <= mean("spleen") <= 160
    assert 20 <= mean("kidney_right") <= 220 and 20 <= mean("kidney_left") <= 220
    assert -10 <= mean("gallbladder") <= 40
    assert -10 <= mean("urinary_bladder") <= 40
    assert 25 <= mean("pancreas") <= 150
    aorta = {"non_contrast": (20, 90), "arterial": (200, 400), "portal_venous": (100, 230)}[ph.meta["phase"]]
    assert aorta[0] <= mean("aorta") <= aorta[1]
    # noise: a homogeneous region (liver interior) has a standard deviation of about 10-25 HU plus texture
    inner = ndimage.binary_erosion(lab == PHANTOM_LABELS["liver"], iterations=3)
    assert 5 <= img[inner].std() <= 45


def test_write_phantoms(tmp_path):
    names = write_phantoms(tmp_path, n=2, seed=3, spacing=TINY, dicom=True, prefix="case")
    assert names == ["case_000", "case_001"]
    assert json.loads((tmp_path / "labels.json").read_text()) == PHANTOM_LABELS
    for i, name in enumerate(names):
        img = nib.load(tmp_path / "images" / f"{name}.nii.gz")
        lab = nib.load(tmp_path / "labels" / f"{name}.nii.gz")
        assert img.get_data_dtype() == np.int16 and lab.get_data_dtype() == np.uint8
        assert img.shape == lab.shape
        assert np.allclose(img.affine, lab.affine) and nib.aff2axcodes(img.affine) == ("R", "A", "S")
        assert int(img.header["sform_code"]) == 1 and int(img.header["qform_code"]) == 1
        if i == 1:
            ref = make_phantom(phantom_seed(3, i), spacing=TINY)
            assert np.array_equal(np.asarray(img.dataobj), ref.image)
            assert np.array_equal(np.asarray(lab.dataobj), ref.label)
            assert np.allclose(img.affine, ref.affine)
        files = sorted((tmp_path / "dicom" / name).glob("*.dcm"))
        assert len(files) == img.shape[2]
    assert phantom_seed(3, 0) != phantom_seed(3, 1) != phantom_seed(4, 1)
    # the same call writes the same volumes
    again = write_phantoms(tmp_path / "again", n=1, seed=3, spacing=TINY)
    assert again == ["phantom_000"]
    a = np.asarray(nib.load(tmp_path / "again" / "images" / "phantom_000.nii.gz").dataobj)
    assert np.array_equal(a, np.asarray(nib.load(tmp_path / "images" / "case_000.nii.gz").dataobj))
