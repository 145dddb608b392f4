"""The CLI end to end on tiny phantoms: finetune with each method, then predict with the result."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from arena_seg.cli import main
from arena_seg.training.methods import METHODS


def _finetune(phantom_dir: Path, out: Path, method: str, *extra: str) -> int:
    images = sorted((phantom_dir / "images").glob("*.nii.gz"))[:2]
    labels = sorted((phantom_dir / "labels").glob("*.nii.gz"))[:2]
    return main(["finetune", "--images", *map(str, images), "--labels", *map(str, labels), "--label", "gallbladder",
                 "--method", method, "--rank", "4", "--epochs", "2", "--num-samples", "2", "--out", str(out),
                 "--device", "cpu", *extra])


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_finetune_each_method_writes_a_model_that_predicts(phantom_dir, tiny_default, tmp_path, method):
    out = tmp_path / "run"
    assert _finetune(phantom_dir, out, method) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["method"] == method
    assert manifest["labels"] == {"gallbladder": 1}
    assert manifest["data_ids"] == ["phantom_000", "phantom_001"]
    assert len(manifest["history"]) == 2 and np.isfinite(manifest["history"][-1]["loss"])
    has_adapter = method in ("arena", "lora")
    assert (out / "adapter.safetensors").is_file() == has_adapter
    assert bool(manifest["effective_ranks"]) == has_adapter
    if method == "lora":  # λ = 0: nothing may be pruned
        assert set(manifest["effective_ranks"].values()) == {4}
    if method == "linear":
        head_only = manifest["trainable_parameters"]["start"]
        assert head_only == 12 * 2 + 2  # 1×1×1 head conv: 12 features → background + gallbladder

    image = sorted((phantom_dir / "images").glob("*.nii.gz"))[-1]
    mask_path = tmp_path / "mask.nii.gz"
    assert main(["predict", "--model", str(out), "--image", str(image), "--out", str(mask_path)]) == 0
    src, mask = nib.load(image), nib.load(mask_path)
    assert mask.shape == src.shape
    np.testing.assert_allclose(mask.affine, src.affine, atol=1e-5)
    assert mask.get_data_dtype() == np.uint8
    assert set(np.unique(np.asanyarray(mask.dataobj))) <= {0, 1}
    assert json.loads((tmp_path / "mask.json").read_text()) == {"gallbladder": 1}


@pytest.mark.slow
def test_arena_lambda_prunes_ranks_and_parameters(phantom_dir, tiny_default, tmp_path):
    out = tmp_path / "run"
    # λ so large that one thresholded step (λ after its warm-up) zeroes every gate but the min_rank = 1 floor
    assert _finetune(phantom_dir, out, "arena", "--lam", "1000") == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["effective_ranks"].values()) == {1}
    params = manifest["trainable_parameters"]
    assert params["end"] < params["start"]


@pytest.mark.slow
def test_predict_default_foundation_keeps_grid_and_names(phantom_dir, tiny_default, tmp_path):
    image = sorted((phantom_dir / "images").glob("*.nii.gz"))[0]
    out = tmp_path / "sub" / "mask.nii.gz"
    assert main(["predict", "--image", str(image), "--out", str(out)]) == 0
    names = json.loads((tmp_path / "sub" / "mask.json").read_text())
    assert list(names) == ["liver", "spleen", "kidney_right", "kidney_left", "aorta", "stomach"]
    assert nib.load(out).shape == nib.load(image).shape


@pytest.mark.slow
def test_evaluate_scores_a_finetuned_model(phantom_dir, tiny_default, tmp_path, capsys):
    out = tmp_path / "run"
    assert _finetune(phantom_dir, out, "linear") == 0
    images = sorted((phantom_dir / "images").glob("*.nii.gz"))[4:]
    labels = sorted((phantom_dir / "labels").glob("*.nii.gz"))[4:]
    scores = tmp_path / "scores.json"
    capsys.readouterr()
    assert main(["evaluate", "--model", str(out), "--images", *map(str, images), "--labels", *map(str, labels),
                 "--json", str(scores)]) == 0
    dice = json.loads(scores.read_text())["dice"]
    assert list(dice) == ["gallbladder"] and 0.0 <= dice["gallbladder"] <= 1.0
    assert capsys.readouterr().out.startswith("gallbladder\t")


@pytest.mark.slow
def test_arena_schedule_flags_reach_the_run(phantom_dir, tiny_default, tmp_path):
    """--min-rank, --lam-warmup/--lam-ramp, --refit and --gate-optimizer land in the manifest and act: with λ huge
    and min_rank 2 every layer keeps exactly 2 ranks."""
    out = tmp_path / "run"
    assert _finetune(phantom_dir, out, "arena", "--lam", "1000", "--min-rank", "2", "--lam-warmup", "0",
                     "--lam-ramp", "0", "--refit", "0.5", "--gate-optimizer", "sgd", "--prox", "lr") == 0
    manifest = json.loads((out / "manifest.json").read_text())
    config = manifest["config"]
    assert {k: config[k] for k in ("min_rank", "lam_warmup", "lam_ramp", "refit", "gate_optimizer")} == {
        "min_rank": 2, "lam_warmup": 0.0, "lam_ramp": 0.0, "refit": 0.5, "gate_optimizer": "sgd"}
    assert set(manifest["effective_ranks"].values()) == {2}
