"""Bad data gets one line naming the problem, exit code 2, and nothing in the output folder."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from arena_seg.cli import main


@pytest.fixture()
def pair(phantom_dir, tmp_path) -> tuple[Path, Path]:
    image = tmp_path / "in" / "images" / "case.nii.gz"
    label = tmp_path / "in" / "labels" / "case.nii.gz"
    image.parent.mkdir(parents=True)
    label.parent.mkdir(parents=True)
    shutil.copy(sorted((phantom_dir / "images").glob("*.nii.gz"))[0], image)
    shutil.copy(sorted((phantom_dir / "labels").glob("*.nii.gz"))[0], label)
    return image, label


def _run(image: Path, label: Path, out: Path, *extra: str) -> int:
    return main(["finetune", "--images", str(image), "--labels", str(label), "--label", "gallbladder=8",
                 "--epochs", "1", "--out", str(out), *extra])


def _save(path: Path, array: np.ndarray, affine: np.ndarray) -> None:
    nib.save(nib.Nifti1Image(array, affine), str(path))


def _expect_error(capsys, code: int, *words: str) -> None:
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("arena-seg finetune: error:")
    for word in words:
        assert word in err, err


def test_label_shape_mismatch(pair, tmp_path, tiny_default, capsys):
    image, label = pair
    lab = nib.load(label)
    _save(label, np.asarray(lab.dataobj)[:-1], lab.affine)
    _expect_error(capsys, _run(image, label, tmp_path / "out"), "shape", str(label))
    assert not (tmp_path / "out").exists()


def test_label_affine_mismatch(pair, tmp_path, tiny_default, capsys):
    image, label = pair
    lab = nib.load(label)
    affine = lab.affine.copy()
    affine[0, 3] += 10.0
    _save(label, np.asarray(lab.dataobj), affine)
    _expect_error(capsys, _run(image, label, tmp_path / "out"), "grid")
    assert not (tmp_path / "out").exists()


def test_empty_label(pair, tmp_path, tiny_default, capsys):
    image, label = pair
    lab = nib.load(label)
    _save(label, np.zeros(lab.shape, np.uint8), lab.affine)
    _expect_error(capsys, _run(image, label, tmp_path / "out"), "empty")
    assert not (tmp_path / "out").exists()


def test_absent_label_id(pair, tmp_path, tiny_default, capsys):
    image, label = pair
    code = main(["finetune", "--images", str(image), "--labels", str(label), "--label", "tumour=42",
                 "--epochs", "1", "--out", str(tmp_path / "out")])
    _expect_error(capsys, code, "42")
    assert not (tmp_path / "out").exists()


def test_non_3d_image(pair, tmp_path, tiny_default, capsys):
    image, label = pair
    img = nib.load(image)
    _save(image, np.asarray(img.dataobj)[:, :, 0], img.affine)
    _expect_error(capsys, _run(image, label, tmp_path / "out"), "3-D")
    assert not (tmp_path / "out").exists()


def test_corrupt_file(pair, tmp_path, tiny_default, capsys):
    image, label = pair
    data = gzip.decompress(image.read_bytes())
    image.write_bytes(gzip.compress(data[: len(data) // 3]))
    _expect_error(capsys, _run(image, label, tmp_path / "out"), "cannot be read")
    assert not (tmp_path / "out").exists()


def test_existing_output_is_kept(pair, tmp_path, tiny_default, capsys):
    image, label = pair
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    _expect_error(capsys, _run(image, label, out), "--force")
    assert (out / "keep.txt").read_text() == "precious"


def test_bad_option_value_is_an_input_error(pair, tmp_path, tiny_default, capsys):
    image, label = pair
    _expect_error(capsys, _run(image, label, tmp_path / "out", "--method", "magic"), "method")
    assert not (tmp_path / "out").exists()
