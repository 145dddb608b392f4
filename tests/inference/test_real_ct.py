"""A real CT (shared/data/real-ct, when present): the mask lands on the scan's own grid, whatever its orientation."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from arena_seg.cli import main

REAL_CT = Path(__file__).resolve().parents[3] / "shared" / "data" / "real-ct" / "abdomen-pelvis-3mm"

pytestmark = pytest.mark.skipif(not (REAL_CT / "image.nii.gz").is_file(), reason="shared/data/real-ct is absent")


@pytest.mark.slow
def test_mask_on_the_real_scan_grid_in_any_orientation(tiny_default, tmp_path):
    src = nib.load(REAL_CT / "image.nii.gz")
    assert nib.aff2axcodes(src.affine) == ("R", "A", "S")
    # the same scan stored LPS with its slices reversed: a different voxel order for the same anatomy
    flipped = nib.Nifti1Image(np.asanyarray(src.dataobj)[::-1, ::-1, ::-1].copy(),
                              src.affine @ _flip_all(src.shape))
    nib.save(flipped, str(tmp_path / "lps.nii.gz"))
    for name, path in (("ras", REAL_CT / "image.nii.gz"), ("lps", tmp_path / "lps.nii.gz")):
        assert main(["predict", "--image", str(path), "--out", str(tmp_path / f"{name}.nii.gz")]) == 0
    ras, lps = nib.load(tmp_path / "ras.nii.gz"), nib.load(tmp_path / "lps.nii.gz")
    assert ras.shape == src.shape and lps.shape == src.shape
    np.testing.assert_allclose(ras.affine, src.affine, atol=1e-4)
    np.testing.assert_allclose(lps.affine, flipped.affine, atol=1e-4)
    a, b = np.asanyarray(ras.dataobj), np.asanyarray(lps.dataobj)[::-1, ::-1, ::-1]
    assert (a == b).mean() > 0.99  # same anatomy, same labels, up to resampling at the edges
    assert json.loads((tmp_path / "ras.json").read_text())["liver"] == 1


def _flip_all(shape: tuple[int, ...]) -> np.ndarray:
    """Voxel-index transform of reversing every axis: i -> n-1-i."""
    flip = np.diag([-1.0, -1.0, -1.0, 1.0])
    flip[:3, 3] = np.asarray(shape[:3]) - 1
    return flip


@pytest.mark.slow
def test_embedded_default_network_finds_the_organs_of_the_real_scan(tmp_path):
    """The shipped network (sample-data/default) through `arena-seg predict` on the real scan, stored LPS as DICOM
    converters write it. The scan is in the network's training set, so this checks the shipped weights and the
    pipeline (orientation, HU window, grids), not generalisation: the model card has the held-out figure."""
    model = Path(__file__).resolve().parents[2] / "sample-data" / "default"
    src = nib.load(REAL_CT / "image.nii.gz")
    flip_xy = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip_xy[:2, 3] = np.asarray(src.shape[:2]) - 1  # new voxel i -> old voxel n-1-i along x and y
    lps = nib.Nifti1Image(np.asanyarray(src.dataobj)[::-1, ::-1, :], src.affine @ flip_xy)
    assert nib.aff2axcodes(lps.affine) == ("L", "P", "S")
    nib.save(lps, str(tmp_path / "lps.nii.gz"))
    assert main(["predict", "--model", str(model), "--image", str(tmp_path / "lps.nii.gz"),
                 "--out", str(tmp_path / "mask.nii.gz")]) == 0
    names = json.loads((tmp_path / "mask.json").read_text())
    mask = np.asanyarray(nib.load(tmp_path / "mask.nii.gz").dataobj)[::-1, ::-1, :]  # back to the RAS voxels
    truth = np.asanyarray(nib.load(REAL_CT / "label_full.nii.gz").dataobj)
    ts_ids = {"liver": 5, "spleen": 1, "kidney_right": 2, "kidney_left": 3, "aorta": 52, "stomach": 6}
    dice = {}
    for organ, ts in ts_ids.items():
        a, b = mask == names[organ], truth == ts
        dice[organ] = 2 * (a & b).sum() / (a.sum() + b.sum())
    assert dice["liver"] > 0.85 and dice["spleen"] > 0.8, dice
    assert min(dice["kidney_right"], dice["kidney_left"], dice["aorta"]) > 0.7, dice
