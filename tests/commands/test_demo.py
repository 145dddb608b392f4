"""`arena-seg demo` calls the library (phantoms, predict, finetune) directly, in order, and prints each step as the
command line that would do it."""

from __future__ import annotations

from pathlib import Path

from arena_seg import cli
from arena_seg.commands import finetune, predict
from arena_seg.data import phantoms


def test_demo_calls_the_steps(tmp_path, monkeypatch, capsys):
    calls = []

    def fake_phantoms(out, n, seed):
        calls.append(("phantoms", n, seed))
        for sub in ("images", "labels"):
            (Path(out) / sub).mkdir(parents=True)
            for i in range(n):
                (Path(out) / sub / f"phantom_{i:03d}.nii.gz").write_text("")
        (Path(out) / "labels.json").write_text("{}")

    monkeypatch.setattr(phantoms, "write_phantoms", fake_phantoms)
    monkeypatch.setattr(predict, "predict_file",
                        lambda image, out, model: calls.append(("predict", model, Path(out).name)))
    monkeypatch.setattr(finetune, "finetune_to_folder", lambda images, labels, organs, out, config, force: calls.append(
        ("finetune", len(images), len(labels), organs, config.epochs, force)))
    assert cli.main(["demo", "--out", str(tmp_path), "--shots", "2", "--epochs", "3"]) == 0
    assert calls == [("phantoms", 3, 7), ("predict", "default", "foundation_mask.nii.gz"),
                     ("finetune", 2, 2, ["gallbladder"], 3, True),
                     ("predict", str(tmp_path / "model"), "arena_mask.nii.gz")]
    out = capsys.readouterr().out
    assert out.count("$ arena-seg ") == 4 and "--label gallbladder --epochs 3" in out
