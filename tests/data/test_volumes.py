"""Reading volumes in any supported format gives the same voxels and RAS affine; label checks name the problem."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from arena_seg.data.volumes import Volume, check_label, read_volume
from arena_seg.errors import InputError


def test_nrrd_and_nifti_agree(tmp_path):
    rng = np.random.default_rng(0)
    array = rng.integers(-1000, 1000, size=(7, 6, 5)).astype(np.int16)
    affine = np.array([[-0.8, 0, 0, 100.0], [0, -0.9, 0, 50.0], [0, 0, 2.5, -30.0], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(array, affine), str(tmp_path / "a.nii.gz"))
    # the same image written through ITK (LPS) as NRRD, the way Slicer saves segmentations
    itk = sitk.ReadImage(str(tmp_path / "a.nii.gz"))
    sitk.WriteImage(itk, str(tmp_path / "a.nrrd"))
    nii, nrrd = read_volume(tmp_path / "a.nii.gz"), read_volume(tmp_path / "a.nrrd")
    np.testing.assert_array_equal(nii.array, array)
    np.testing.assert_array_equal(nrrd.array, array)
    np.testing.assert_allclose(nrrd.affine, affine, atol=1e-6)


def test_check_label_reports_missing_ids():
    affine = np.eye(4)
    image = Volume(np.zeros((4, 4, 4), np.int16), affine, path=__import__("pathlib").Path("img"))
    label = Volume(np.zeros((4, 4, 4), np.uint8), affine, path=__import__("pathlib").Path("lab"))
    label.array[1, 1, 1] = 3
    assert check_label(image, label, [3, 5]).tolist() == [3]
    with pytest.raises(InputError, match="none of the requested ids"):
        check_label(image, label, [5])
