"""`arena-seg infer` and the batch runner: outputs on the series' grid, DICOM SEG, report, reruns, exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from batch_helpers import PYDICOM_CT5N, copy_series

from arena_seg.cli import main

LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
ENTRY_KEYS = {"key", "kind", "series_instance_uid", "folder", "files", "modality", "description", "status", "reason",
              "outputs", "volumes_ml", "timings", "rank"}


def sitk_geometry(files: list[str]) -> tuple[tuple[int, ...], np.ndarray]:
    """Size and RAS affine SimpleITK gives the series made of ``files``."""
    folder = str(Path(files[0]).parent)
    reader = sitk.ImageSeriesReader()
    uid = pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(folder, uid))
    img = reader.Execute()
    lps = np.eye(4)
    lps[:3, :3] = np.asarray(img.GetDirection()).reshape(3, 3) * np.asarray(img.GetSpacing())
    lps[:3, 3] = img.GetOrigin()
    return img.GetSize(), LPS @ lps


@pytest.fixture(scope="module")
def good_run(phantom_series, coarse_network_dir, tmp_path_factory):
    """A tree with a renamed series, an RLE-compressed one, pydicom's CT5N and a NIfTI file, segmented once."""
    root = tmp_path_factory.mktemp("tree")
    copy_series(phantom_series / "dicom" / "phantom_000", root / "site" / "patientA" / "s1", rename=True)
    copy_series(phantom_series / "dicom" / "phantom_001", root / "site" / "patientB", rle=True)
    shutil.copytree(PYDICOM_CT5N, root / "pydicom" / "CT5N")
    (root / "nifti").mkdir()
    shutil.copy(phantom_series / "images" / "phantom_002.nii.gz", root / "nifti")
    out = root.parent / f"{root.name}-out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ARENA_SEG_DEFAULT_MODEL", str(coarse_network_dir))
        rc = main(["infer", "--input", str(root), "--output", str(out), "--no-progress"])
    return root, out, rc


def test_all_series_done_with_report(good_run, capsys):
    root, out, rc = good_run
    assert rc == 0
    report = json.loads((out / "report.json").read_text())
    assert report["summary"] | {"seconds": 0, "series_per_minute": 0} == {
        "total": 4, "done": 4, "skipped": 0, "failed": 0, "seconds": 0, "series_per_minute": 0}
    assert report["model"]["labels"] == {"liver": 1, "spleen": 2, "kidney_right": 3, "kidney_left": 4, "aorta": 5,
                                         "stomach": 6}
    assert report["formats"] == ["nifti", "seg"] and report["world_size"] == 1
    kinds = sorted((e["kind"], e["folder"]) for e in report["series"])
    assert kinds == [("dicom", "pydicom/CT5N"), ("dicom", "site/patientA/s1"), ("dicom", "site/patientB"),
                     ("nifti", "nifti/phantom_002.nii.gz")]
    for e in report["series"]:
        assert set(e) >= ENTRY_KEYS and e["status"] == "done" and e["reason"] is None
        assert set(e["timings"]) >= {"read_s", "predict_s", "network_s", "write_s", "total_s"}
        mask = nib.load(out / e["outputs"]["nifti"])
        counts = np.bincount(np.asarray(mask.dataobj).ravel(), minlength=7)
        voxel_ml = abs(np.linalg.det(mask.affine[:3, :3])) / 1000
        assert e["volumes_ml"] == pytest.approx({k: counts[v] * voxel_ml for k, v in report["model"]["labels"].items()},
                                                abs=1e-3)
        assert json.loads((out / e["outputs"]["labels"]).read_text()) == report["model"]["labels"]
    assert not [p for p in out.rglob("*") if ".partial" in p.name]


def test_masks_lie_on_the_series_grid(good_run):
    root, out, _ = good_run
    report = json.loads((out / "report.json").read_text())
    for e in report["series"]:
        mask = nib.load(out / e["outputs"]["nifti"])
        if e["kind"] == "nifti":
            src = nib.load(root / e["folder"])
            assert mask.shape == src.shape and np.allclose(mask.affine, src.affine, atol=1e-4)
            continue
        files = sorted(str(p) for p in (root / e["folder"]).iterdir())
        size, affine = sitk_geometry(files)
        assert mask.shape == size
        np.testing.assert_allclose(mask.affine, affine, atol=1e-4)
        assert mask.get_qform(coded=True)[1] == 1 and mask.get_sform(coded=True)[1] == 1


def test_dicom_seg_matches_the_nifti_mask(good_run):
    root, out, _ = good_run
    report = json.loads((out / "report.json").read_text())
    labels = report["model"]["labels"]
    for e in (e for e in report["series"] if e["kind"] == "dicom"):
        mask = np.asarray(nib.load(out / e["outputs"]["nifti"]).dataobj)
        seg = hd.seg.segread(str(out / e["outputs"]["seg"]))
        # the source instances in slice order: the NIfTI's third axis runs along the slice normal, as SimpleITK's
        headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in (root / e["folder"]).iterdir()]
        normal = np.cross(*np.reshape(np.asarray(headers[0].ImageOrientationPatient, float), (2, 3)))
        headers.sort(key=lambda h: float(np.asarray(h.ImagePositionPatient, float) @ normal))
        uids = [str(h.SOPInstanceUID) for h in headers]
        assert {u for _, _, u in seg.get_source_image_uids()} == set(uids)
        assert seg.SeriesInstanceUID != e["series_instance_uid"] and seg.StudyInstanceUID == headers[0].StudyInstanceUID
        names = {seg.get_segment_description(n).SegmentLabel: n for n in seg.segment_numbers}
        assert set(names) == set(labels)
        for organ, value in labels.items():
            frames = seg.get_pixels_by_source_instance(uids, segment_numbers=[names[organ]],
                                                       assert_missing_frames_are_empty=True)[..., 0]
            np.testing.assert_array_equal(frames.astype(bool), (mask == value).transpose(2, 1, 0))


def test_rerun_skips_what_is_done(good_run, coarse_default, capsys):
    root, out, _ = good_run
    before = {p: p.stat().st_mtime_ns for p in out.rglob("mask.nii.gz")}
    assert main(["infer", "--input", str(root), "--output", str(out), "--no-progress"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert {e["status"] for e in report["series"]} == {"skipped"}
    assert all("already done" in e["reason"] and e["outputs"] and e["volumes_ml"] for e in report["series"])
    assert {p: p.stat().st_mtime_ns for p in out.rglob("mask.nii.gz")} == before
    assert "4 skipped" in capsys.readouterr().out


def test_bad_series_are_reported_and_the_good_one_still_comes_out(phantom_series, coarse_default, tmp_path, capsys):
    src = phantom_series / "dicom"
    root = tmp_path / "in"
    copy_series(src / "phantom_000", root / "good")
    broken = copy_series(src / "phantom_001", root / "corrupt")
    broken[7].write_bytes(broken[7].read_bytes()[:-700])  # truncated inside the pixel data
    copy_series(src / "phantom_002", root / "mr", Modality="MR")
    gap = copy_series(src / "phantom_000", root / "gap", PatientID="gap")
    gap[10].unlink()
    (root / "README.txt").write_text("export notes")
    rc = main(["infer", "--input", str(root), "--output", str(tmp_path / "out"), "--no-progress"])
    assert rc == 1
    entries = {e["folder"]: e for e in json.loads((tmp_path / "out" / "report.json").read_text())["series"]}
    assert set(entries) == {"good", "corrupt", "mr", "gap"}
    assert entries["good"]["status"] == "done" and (tmp_path / "out" / entries["good"]["outputs"]["seg"]).is_file()
    assert entries["corrupt"]["status"] == "failed" and broken[7].name in entries["corrupt"]["reason"]
    assert entries["mr"]["status"] == "skipped" and entries["mr"]["reason"] == "not CT (Modality MR)"
    assert entries["gap"]["status"] == "failed" and entries["gap"]["reason"].startswith("missing slices")
    assert not (tmp_path / "out" / entries["gap"]["key"]).exists()
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("4 series: 1 done, 1 skipped, 2 failed") and "corrupt" in line and "gap" in line


def test_library_runner_labels_formats_and_atomic_writes(phantom_series, coarse_network_dir, tmp_path, monkeypatch):
    from arena_seg.inference import batch
    from arena_seg.inference.loading import load_model
    from arena_seg.inference.predictor import Predictor

    predictor = Predictor(*load_model(str(coarse_network_dir)), device="cpu")
    runner = batch.BatchRunner(predictor, formats=["nifti"], labels=["liver", "spleen"])
    series = phantom_series / "dicom" / "phantom_000"
    report = runner.run([series], tmp_path / "out")
    (entry,) = report["series"]
    assert entry["status"] == "done" and set(entry["outputs"]) == {"nifti", "labels"}
    mask = np.asarray(nib.load(tmp_path / "out" / entry["outputs"]["nifti"]).dataobj)
    assert set(np.unique(mask)) <= {0, 1, 2} and set(entry["volumes_ml"]) == {"liver", "spleen"}
    # other labels: not the same result, so it is redone
    report = batch.run_batch([series], tmp_path / "out", predictor, formats=["nifti"], labels=["liver"])
    assert report["series"][0]["status"] == "done" and set(report["series"][0]["volumes_ml"]) == {"liver"}
    # a write that fails half-way leaves neither a mask nor a temporary file
    monkeypatch.setattr(nib, "save", lambda img, path: (Path(path).write_bytes(b"half"), 1 / 0))
    report = batch.run_batch([series], tmp_path / "out2", predictor, formats=["nifti", "seg"])
    (entry,) = report["series"]
    assert entry["status"] == "failed" and entry["reason"].startswith("writing outputs failed: ZeroDivisionError")
    assert not list((tmp_path / "out2" / entry["key"]).iterdir())
    with pytest.raises(ValueError, match="no organ pancreas"):
        batch.BatchRunner(predictor, labels=["pancreas"])


@pytest.mark.parametrize(("args", "message"), [
    (["--output", "OUT"], "--input DIR is required"),
    (["--input", "MISSING", "--output", "OUT"], "MISSING does not exist"),
    (["--input", "IN", "--output", "OUT", "--format", "png"], "--format png"),
    (["--input", "NIFTI", "--output", "OUT", "--labels", "pancreas"], "no organ pancreas"),
    (["--input", "IN", "--output", "OUT"], "no DICOM series or NIfTI files found"),
])
def test_bad_arguments_exit_2_with_one_line(args, message, phantom_series, coarse_default, tmp_path, capsys):
    (tmp_path / "IN").mkdir()
    (tmp_path / "IN" / "notes.txt").write_text("nothing to segment")
    args = [str(tmp_path / a) if a in ("IN", "OUT", "MISSING") else a for a in args]
    args = [str(phantom_series / "images" / "phantom_000.nii.gz") if a == "NIFTI" else a for a in args]
    assert main(["infer", "--no-progress", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("arena-seg infer: error:") and message in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
