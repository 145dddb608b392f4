"""The bounded-memory predictor gives MONAI's masks: resampling, streamed sliding window, labels back to the scan."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai import transforms as mt
from monai.data import MetaTensor
from monai.inferers import sliding_window_inference
from monai.transforms import Invertd
from torch import nn

from arena_seg.bench.memory import legacy_predict
from arena_seg.inference.loading import load_model
from arena_seg.inference.predictor import Predictor
from arena_seg.inference.resample import LabelResampler, network_grid, resample_image
from arena_seg.inference.sliding import stream_probabilities
from arena_seg.models.spec import Preprocessing


def _affine(spacing, flips=(1, 1, 1), degrees=0.0, shear=0.0, origin=(10.0, -5.0, 3.0)) -> np.ndarray:
    th = np.deg2rad(degrees)
    rot = np.array([[np.cos(th), -np.sin(th), 0], [np.sin(th), np.cos(th), 0], [0, 0, 1]])
    lin = rot @ np.diag(np.asarray(spacing) * np.asarray(flips))
    lin[0, 1] += shear
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = lin, origin
    return out


GEOMETRIES = {
    # spacings as scanners give them: a scan voxel never sits exactly halfway between two network voxels (where
    # MONAI's nearest choice is float noise)
    "ras-anisotropic": _affine((0.93, 1.07, 2.45)),
    "lps-rotated": _affine((1.31, 0.77, 1.93), flips=(-1, -1, 1), degrees=12.0),
    "sheared": _affine((1.03, 1.21, 1.73), shear=0.137),
}


def _monai_network_input(array, affine, pre) -> MetaTensor:
    image = MetaTensor(torch.as_tensor(array, dtype=torch.float32)[None], affine=torch.as_tensor(affine))
    for t in (mt.Orientation(axcodes="RAS"), mt.Spacing(pixdim=pre.spacing, mode="bilinear")):
        image = t(image)
    return image


@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
def test_chunked_resampling_equals_monai_spacing(geometry):
    rng = np.random.default_rng(0)
    array = rng.integers(-1024, 2000, size=(23, 19, 11)).astype(np.int16)
    affine, pre = GEOMETRIES[geometry], Preprocessing(spacing=(1.5, 1.5, 1.5))
    expected = _monai_network_input(array, affine, pre)
    shape, net_affine = network_grid(array.shape, affine, pre)
    assert shape == tuple(expected.shape[1:])
    np.testing.assert_allclose(net_affine, expected.affine.numpy(), atol=1e-9)
    got = resample_image(array, affine, shape, net_affine, chunk=997)  # chunks that end mid-row
    assert got.dtype == torch.float32
    assert (got - expected[0].as_tensor()).abs().max().item() < 1e-3  # HU up to 2000: float32 rounding



@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
def test_chunked_nearest_resampling_equals_monai_spacing(geometry):
    """Label maps (training's Spacingd nearest): the nearest voxel's value, as MONAI picks it."""
    array = np.random.default_rng(2).integers(0, 6, size=(23, 19, 11)).astype(np.uint8)
    affine, pre = GEOMETRIES[geometry], Preprocessing(spacing=(1.5, 1.5, 1.5))
    image = MetaTensor(torch.as_tensor(array, dtype=torch.float32)[None], affine=torch.as_tensor(affine))
    expected = mt.Spacing(pixdim=pre.spacing, mode="nearest")(mt.Orientation(axcodes=pre.orientation)(image))
    shape, net_affine = network_grid(array.shape, affine, pre)
    got = resample_image(array, affine, shape, net_affine, chunk=997, mode="nearest")
    assert got.dtype == torch.float32 and tuple(got.shape) == tuple(expected.shape[1:])
    assert torch.equal(got, expected[0].as_tensor())

def test_fortran_ordered_scan_and_same_grid_are_exact():
    array = np.asfortranarray(np.random.default_rng(1).integers(-500, 500, size=(8, 9, 10)).astype(np.int16))
    affine = _affine((1.5, 1.5, 1.5))
    shape, net_affine = network_grid(array.shape, affine, Preprocessing(spacing=(1.5, 1.5, 1.5)))
    assert shape == array.shape
    assert torch.equal(resample_image(array, affine, shape, net_affine), torch.as_tensor(array, dtype=torch.float32))
    lps = _affine((1.5, 1.5, 1.5), flips=(-1, -1, 1))  # a flip is a lattice map: exact values, reversed
    shape, net_affine = network_grid(array.shape, lps, Preprocessing(spacing=(1.5, 1.5, 1.5)))
    got = resample_image(array, lps, shape, net_affine)
    assert torch.equal(got, torch.as_tensor(array[::-1, ::-1].copy(), dtype=torch.float32))


class _Blobs(nn.Module):
    """A deterministic conv network whose classes form smooth blobs (so masks have real boundaries)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.conv = nn.Conv3d(1, channels, 5, padding=2)

    def forward(self, x):
        return self.conv(x) * 4.0


@pytest.mark.parametrize("activation", ["softmax", "sigmoid"])
def test_streamed_sliding_window_equals_monai(activation):
    torch.manual_seed(0)
    image = torch.randn(1, 1, 45, 30, 13)  # several windows along x and y, padded along z (13 < 16)
    model, roi = _Blobs(5).eval(), (16, 12, 16)
    with torch.no_grad():
        logits = sliding_window_inference(image, roi, 2, model, overlap=0.25, mode="gaussian")
    if activation == "softmax":
        expected = torch.softmax(logits, 1)[0]
    else:
        probs = torch.sigmoid(logits)
        expected = torch.cat([torch.full_like(probs[:, :1], 0.5), probs], 1)[0]
    channels = expected.shape[0]
    got = torch.full_like(expected, float("nan"))
    starts = []

    def keep(probs, start):
        starts.append((start, probs.shape[1]))
        got[:, start:start + probs.shape[1]] = probs

    stream_probabilities(model, image, roi, channels, keep, overlap=0.25, sw_batch_size=3, activation=activation)
    assert (got - expected).abs().max().item() < 1e-5
    assert len(starts) > 2 and starts[0][0] == 0 and sum(n for _, n in starts) == 45 + len(starts) - 1  # carry


def _invertd_reference(probs, array, affine, pre, nearest):
    """MONAI's way back: Invertd of the probabilities (or of their argmax, nearest) through Orientation + Spacing."""
    transform = mt.Compose([mt.Orientationd(keys="image", axcodes="RAS"),
                            mt.Spacingd(keys="image", pixdim=pre.spacing, mode="bilinear")])
    image = MetaTensor(torch.as_tensor(array, dtype=torch.float32)[None], affine=torch.as_tensor(affine))
    data = transform({"image": image})
    values = probs.argmax(0, keepdim=True).float() if nearest else probs
    data["pred"] = MetaTensor(values, affine=data["image"].affine, meta=data["image"].meta,
                              applied_operations=data["image"].applied_operations)
    pred = Invertd(keys="pred", transform=transform, orig_keys="image", nearest_interp=nearest)(data)["pred"]
    return (pred[0].round() if nearest else pred.argmax(0)).numpy().astype(np.uint8)


@pytest.mark.parametrize("mode", ["linear", "nearest"])
@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
def test_labels_back_on_the_scan_equal_invertd(geometry, mode):
    array = np.zeros((41, 37, 15), dtype=np.int16)
    affine, pre = GEOMETRIES[geometry], Preprocessing(spacing=(2.0, 2.0, 2.0))
    shape, net_affine = network_grid(array.shape, affine, pre)
    torch.manual_seed(1)
    logits = torch.nn.functional.interpolate(torch.randn(1, 6, 5, 5, 4) * 3, size=shape, mode="trilinear")
    probs = torch.softmax(logits, 1)[0]  # smooth classes: boundaries, flat regions and near-ties
    expected = _invertd_reference(probs, array, affine, pre, nearest=mode == "nearest")
    resampler = LabelResampler(array.shape, affine, shape, net_affine, mode=mode)
    assert resampler.streaming == (geometry != "sheared")
    if resampler.streaming:  # slabs of uneven depth, each with the last slice of the previous one
        bounds = [0, 3, 4, 9, shape[0]]
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            start = max(lo - 1, 0)
            resampler.add(probs[:, start:hi], start)
    else:
        resampler.add(probs, 0)
    got = resampler.result()
    assert got.shape == array.shape
    assert (got == expected).mean() >= 0.9995, (got != expected).sum()
    assert len(np.unique(got)) >= 4


@pytest.mark.slow
def test_predictor_masks_equal_the_monai_pipeline(make_tiny_network, phantom_dir):
    from arena_seg.data.volumes import read_volume

    net = make_tiny_network(spacing=(9.0, 9.0, 9.0), patch=(32, 32, 64))
    model, spec = load_model(str(net))
    predictor = Predictor(model, spec, device="cpu")
    vol = read_volume(sorted((phantom_dir / "images").glob("*.nii.gz"))[0])
    # the phantom stored LPS with its slices reversed, and on a sheared grid: both geometries of the product
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[:2, 3] = np.asarray(vol.shape[:2]) - 1
    lps_array, lps_affine = vol.array[::-1, ::-1].copy(), vol.affine @ flip
    sheared = vol.affine.copy()
    sheared[0, 1] += 0.3
    for array, affine in ((vol.array, vol.affine), (lps_array, lps_affine), (vol.array, sheared)):
        expected = legacy_predict(predictor, array, affine)
        got = predictor.predict_array(array, affine)
        assert got.dtype == np.uint8 and got.shape == array.shape
        assert (got == expected).mean() >= 0.9995
        assert len(np.unique(got)) > 1
    mask, probs = predictor.predict_array_with_probs(vol.array, vol.affine)
    assert probs.shape[0] == predictor.channels and torch.allclose(probs.sum(0), torch.ones(()), atol=1e-5)
    np.testing.assert_array_equal(mask, predictor.predict_array(vol.array, vol.affine))
