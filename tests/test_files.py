"""The one atomic-write helper (and the writers on it), the device resolver and the LPS<->RAS flip."""

from __future__ import annotations

import json
import os

import nibabel as nib
import numpy as np
import pytest
import torch

from arena_seg import files
from arena_seg.data.orientation import LPS_TO_RAS, lps_to_ras, ras_to_lps
from arena_seg.devices import resolve_device
from arena_seg.errors import InputError


def test_atomic_write_syncs_then_renames_a_file_named_like_the_target(tmp_path, monkeypatch):
    synced, seen = [], []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real_fsync(fd)))

    def write(tmp):
        seen.append(tmp)
        assert tmp.name == "out.nii.gz" and tmp.parent.parent == tmp_path  # same folder, the target's suffix
        assert tmp.parent.name.endswith(f".{os.getpid()}{files.PARTIAL}")
        tmp.write_text("new")

    (tmp_path / "out.nii.gz").write_text("old")
    assert files.atomic_write(tmp_path / "out.nii.gz", write) == tmp_path / "out.nii.gz"
    assert (tmp_path / "out.nii.gz").read_text() == "new"
    assert synced[0] == str(seen[0]) and synced[-1] == str(tmp_path)  # the data, then the rename
    assert [p.name for p in tmp_path.iterdir()] == ["out.nii.gz"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "sub" / "a.json"
    files.write_json(target, {"v": 1})

    def half(tmp):
        tmp.write_text("{\"v\": ")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        files.atomic_write(target, half)
    assert json.loads(target.read_text()) == {"v": 1} and [p.name for p in target.parent.iterdir()] == ["a.json"]
    with pytest.raises(TypeError):  # not JSON-able: refused before anything is written
        files.write_json(target, {"v": object()})
    assert json.loads(target.read_text()) == {"v": 1}
    files.write_json(target, {"v": 2}, indent=None)
    assert target.read_text() == '{"v": 2}\n'


def test_write_nifti_keeps_dtype_geometry_and_description(tmp_path):
    affine = np.array([[-2.0, 0, 0, 10], [0, 2.0, 0, -5], [0, 0, 3.0, 1], [0, 0, 0, 1]])
    image = np.arange(24, dtype=np.int16).reshape(2, 3, 4) - 1000
    files.write_nifti(tmp_path / "ct.nii.gz", image, affine, description="phantom")
    img = nib.load(tmp_path / "ct.nii.gz")
    assert img.get_data_dtype() == np.int16 and np.array_equal(np.asarray(img.dataobj), image)
    assert np.allclose(img.affine, affine) and int(img.header["qform_code"]) == int(img.header["sform_code"]) == 1
    assert img.header.get_xyzt_units()[0] == "mm" and img.header["descrip"].tobytes().startswith(b"phantom")
    files.write_nifti_mask(tmp_path / "m.nii.gz", image > -990, affine)
    assert nib.load(tmp_path / "m.nii.gz").get_data_dtype() == np.uint8


def test_staged_output_appears_only_when_the_block_finishes(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RuntimeError), files.staged_output(out) as stage:
        (stage / "x").write_text("1")
        raise RuntimeError
    assert not out.exists() and list(tmp_path.iterdir()) == []
    with files.staged_output(out) as stage:
        (stage / "x").write_text("1")
    assert (out / "x").read_text() == "1"
    with pytest.raises(InputError, match="not empty"), files.staged_output(out):
        pass


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu") == resolve_device(torch.device("cpu"))
    auto = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("auto") == resolve_device(None) == auto
    with pytest.raises(InputError, match="give auto, cpu, cuda or cuda:N"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no GPU"):
            resolve_device("cuda:0")
    else:
        with pytest.raises(InputError, match="GPU"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")


def test_lps_ras_flip_is_its_own_inverse():
    affine = np.array([[0.7, 0.1, 0, 12.0], [0.2, -0.8, 0, -3.0], [0, 0, 2.5, 40.0], [0, 0, 0, 1]])
    assert np.array_equal(ras_to_lps(affine)[:2], -affine[:2]) and np.array_equal(ras_to_lps(affine)[2:], affine[2:])
    assert np.array_equal(lps_to_ras(ras_to_lps(affine)), affine)
    assert np.array_equal(LPS_TO_RAS @ LPS_TO_RAS, np.eye(4))
    with pytest.raises(ValueError, match="4x4"):
        lps_to_ras(np.eye(3))
