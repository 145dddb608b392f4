"""Training and evaluation pipelines: requested organs become channels 1..n, everything else background; the
chunked loader caches the tensors MONAI's loading gave."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch

from arena_seg.data.transforms import eval_transforms, train_transforms
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


def _write(tmp_path, name: str, array: np.ndarray, affine: np.ndarray) -> str:
    path = tmp_path / name
    nib.save(nib.Nifti1Image(array, affine), str(path))
    return str(path)


def _cached(transform, item: dict) -> dict:
    """What CacheDataset caches: the pipeline up to its first random transform."""
    from monai.transforms import Randomizable

    return transform(item, end=transform.get_index_of_first(lambda t: isinstance(t, Randomizable)))


@pytest.mark.parametrize("grid", ["ras", "lps_rotated"])
def test_chunked_loading_caches_the_former_tensors(tmp_path, grid):
    """train_transforms' chunked loader (no full-resolution float copies) caches what LoadImaged → Orientationd
    → Spacingd cached, to float rounding: images within 1e-5, labels equal but for a few voxels at exact halves."""
    from arena_seg.data.phantoms import make_phantom

    phantom = make_phantom(3, spacing=(3.1, 2.7, 4.2))
    image, label, affine = phantom.image, phantom.label, phantom.affine.copy()
    if grid == "lps_rotated":  # stored LPS (x and y flipped) and tilted 7° about z: Orientation and shear both work
        c, s = np.cos(np.radians(7)), np.sin(np.radians(7))
        tilt = np.array([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
        affine = tilt @ affine @ np.diag([-1.0, -1.0, 1.0, 1.0])
        affine[:2, 3] += 5.0
    item = {"image": _write(tmp_path, "img.nii.gz", image, affine),
            "label": _write(tmp_path, "lab.nii.gz", label, affine)}
    pre = Preprocessing(spacing=(2.5, 2.5, 2.5), patch=(32, 32, 32))
    organs = {1: 1, 2: 2, 5: 3}
    old = _cached(train_transforms(pre, organs, loader="monai"), item)
    new = _cached(train_transforms(pre, organs, loader="chunked"), item)
    for key in ("image", "label"):
        assert new[key].shape == old[key].shape and new[key].dtype == old[key].dtype
    np.testing.assert_allclose(new["image"].numpy(), old["image"].numpy(), atol=1e-5)
    same = float((new["label"] == old["label"]).float().mean())
    assert same >= 0.9995, same
    assert set(np.unique(new["label"].numpy())) == {0.0, 1.0, 2.0, 3.0}


def test_chunked_eval_loading_matches_monai(tmp_path):
    """eval_transforms (validation during training) loads the same way: same tensors and affine as MONAI's."""
    from arena_seg.data.phantoms import make_phantom

    phantom = make_phantom(4, spacing=(2.9, 2.9, 3.7))
    item = {"image": _write(tmp_path, "img.nii.gz", phantom.image, phantom.affine),
            "label": _write(tmp_path, "lab.nii.gz", phantom.label, phantom.affine)}
    pre = Preprocessing(spacing=(2.0, 2.0, 2.0), patch=(32, 32, 32), intensity="nonzero_zscore_minmax")
    old = eval_transforms(pre, {1: 1}, loader="monai")(item)
    new = eval_transforms(pre, {1: 1}, loader="chunked")(item)
    np.testing.assert_allclose(new["image"].numpy(), old["image"].numpy(), atol=1e-5)
    np.testing.assert_allclose(new["image"].affine.numpy(), old["image"].affine.numpy(), atol=1e-9)
    assert float((new["label"] == old["label"]).float().mean()) >= 0.9995


def test_strong_augmentation_keeps_patches_and_labels_valid(tmp_path):
    """Pretraining's "strong" pipeline: patch size kept, labels stay the mapped ids (nearest, no new values), the
    image changes from the light pipeline's for the same seed, and an unknown choice is refused."""
    from arena_seg.data.phantoms import make_phantom

    phantom = make_phantom(5, spacing=(3.0, 3.0, 3.0))
    item = {"image": _write(tmp_path, "img.nii.gz", phantom.image, phantom.affine),
            "label": _write(tmp_path, "lab.nii.gz", phantom.label, phantom.affine)}
    pre = Preprocessing(spacing=(3.0, 3.0, 3.0), patch=(32, 32, 32))
    images = {}
    for augment in ("light", "strong"):
        t = train_transforms(pre, {1: 1, 2: 2}, num_samples=6, sampler="classes", augment=augment)
        t.set_random_state(seed=3)
        patches = t(item)
        assert all(tuple(p["image"].shape) == (1, 32, 32, 32) for p in patches)
        assert set(np.unique(np.concatenate([np.asarray(p["label"]).ravel() for p in patches]))) <= {0, 1, 2}
        images[augment] = np.stack([np.asarray(p["image"]) for p in patches])
    assert not np.allclose(images["light"], images["strong"])
    with pytest.raises(ValueError, match="augment"):
        train_transforms(pre, {1: 1}, augment="heavy")
