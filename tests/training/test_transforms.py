"""Label mapping in the training pipeline: requested organs become channels 1..n, everything else background."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import torch

from arena_seg.data.transforms import eval_transforms
from arena_seg.models.registry import Preprocessing


def test_unrequested_organ_never_leaks_into_a_channel(tmp_path):
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    image = np.full((16, 16, 16), 40, np.int16)
    label = np.zeros((16, 16, 16), np.uint8)
    label[2:6] = 1  # liver: id 1 in the file, not requested, and equal to the target channel of pancreas
    label[8:12] = 7  # pancreas: requested, becomes channel 1
    nib.save(nib.Nifti1Image(image, affine), str(tmp_path / "img.nii.gz"))
    nib.save(nib.Nifti1Image(label, affine), str(tmp_path / "lab.nii.gz"))
    pre = Preprocessing(spacing=(2.0, 2.0, 2.0), patch=(16, 16, 16))
    out = eval_transforms(pre, {7: 1})({"image": str(tmp_path / "img.nii.gz"), "label": str(tmp_path / "lab.nii.gz")})
    mapped = torch.as_tensor(out["label"])[0].numpy()
    assert set(np.unique(mapped)) == {0, 1}
    assert (mapped == 1).sum() == (label == 7).sum()
    np.testing.assert_array_equal(mapped == 1, label == 7)
    # HU window: 40 HU scales to (40 + 175) / 425
    assert float(out["image"].max()) == np.float32((40 + 175) / 425)
