"""`arena-seg pretrain`: continue a network on phantoms, keep the best validated weights, refuse mismatched --init."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from arena_seg.cli import main
from arena_seg.data.phantoms import BASE_ORGANS
from arena_seg.models.registry import load_network


def _pretrain(phantom_dir: Path, out: Path, *extra: str) -> int:
    labels = [a for organ in BASE_ORGANS for a in ("--label", organ)]
    return main(["pretrain", "--images", str(phantom_dir / "images"), "--labels", str(phantom_dir / "labels"),
                 *labels, "--out", str(out), "--epochs", "2", "--num-samples", "1", "--val", "1", "--val-every", "1",
                 "--device", "cpu", *extra])


@pytest.mark.slow
def test_pretrain_continues_a_network_and_writes_its_card(phantom_dir, tiny_network_dir, tmp_path, capsys):
    out = tmp_path / "net"
    assert _pretrain(phantom_dir, out, "--init", str(tiny_network_dir)) == 0
    assert "held-out Dice: liver" in capsys.readouterr().out
    model, spec = load_network(out)
    _, before = load_network(tiny_network_dir)
    assert spec.labels == {organ: i + 1 for i, organ in enumerate(BASE_ORGANS)}
    assert spec.preprocessing == before.preprocessing and spec.arch == before.arch  # taken from --init
    card = json.loads((out / "network.json").read_text())["metadata"]["pretrain"]
    assert card["epochs"] == 2 and card["sampler"] == "classes" and card["init"] == str(tiny_network_dir)
    assert len(card["val_ids"]) == 1 and len(card["train_ids"]) == 5
    assert set(card["val_dice"]) == set(BASE_ORGANS)
    assert all(0.0 <= d <= 1.0 for d in card["val_dice"].values())
    trained, start = load_file(str(out / "network.safetensors")), load_file(str(tiny_network_dir /
                                                                                 "network.safetensors"))
    assert any(not trained[k].equal(start[k]) for k in start)  # it trained


@pytest.mark.slow
def test_pretrain_stops_at_the_time_limit(phantom_dir, tiny_network_dir, tmp_path):
    out = tmp_path / "net"
    assert _pretrain(phantom_dir, out, "--init", str(tiny_network_dir), "--time-limit", "0.0001") == 0
    card = json.loads((out / "network.json").read_text())["metadata"]["pretrain"]
    assert card["epochs"] == 1  # the limit is checked after each epoch


def test_pretrain_refuses_an_init_with_other_organs(phantom_dir, tiny_network_dir, tmp_path, capsys):
    out = tmp_path / "net"
    code = main(["pretrain", "--images", str(phantom_dir / "images"), "--labels", str(phantom_dir / "labels"),
                 "--label", "spleen", "--label", "liver", "--out", str(out), "--init", str(tiny_network_dir)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "--init" in err and "same --label options" in err
    assert not out.exists()


@pytest.mark.parametrize("sampler", ["classes", "posneg"])
def test_train_patches_are_centred_as_asked(phantom_dir, sampler):
    """With `classes`, the small organs centre as many patches as the liver does."""
    import numpy as np

    from arena_seg.data.transforms import train_transforms
    from arena_seg.models.registry import Preprocessing

    pre = Preprocessing(spacing=(6.0, 6.0, 6.0), patch=(8, 8, 8))
    transform = train_transforms(pre, {1: 1, 5: 2}, num_samples=64, sampler=sampler)  # liver, aorta
    transform.set_random_state(0)
    item = {"image": str(phantom_dir / "images" / "phantom_000.nii.gz"),
            "label": str(phantom_dir / "labels" / "phantom_000.nii.gz")}
    centres = np.array([int(p["label"][0, 4, 4, 4]) for p in transform(item)])
    share = {c: float(np.mean(centres == c)) for c in (0, 1, 2)}
    if sampler == "classes":
        assert share[2] > 0.2 and share[1] > 0.2  # about a third each
    else:
        assert share[0] + share[1] + share[2] == 1.0 and share[2] < share[1]  # foreground drawn by its size
