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
