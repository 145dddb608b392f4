"""`arena-seg infer` over a folder of exports as they come: every series yields its mask on the grid an independent
reader gives, the report says what was left out, and a SEG that cannot reference its source is left out with a
warning instead of failing the series."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
from dicom_cases import (
    add_scout,
    anonymised,
    dcm2niix_style,
    enhanced,
    second_acquisition,
    sitk_read,
    without_file_meta,
)
from pydicom.uid import JPEG2000Lossless

from arena_seg.cli import main
from arena_seg.data.dicom_read import read_dicom_series
from arena_seg.data.dicom_seg import read_segmentation
from arena_seg.data.dicom_write import write_dicom_series
from arena_seg.data.phantoms import make_phantom


@pytest.fixture(scope="module")
def network(make_tiny_network) -> Path:
    """The tiny test network at 14 mm: a phantom at 10 × 9 × 14 mm fits one 32×32×64 window."""
    return make_tiny_network(spacing=(14.0, 14.0, 14.0), patch=(32, 32, 64))


@pytest.fixture(scope="module")
def exports(tmp_path_factory, network):
    """One CLI run over: anonymised (no UIDs, JPEG 2000), enhanced CT (JPEG 2000), a series with scouts in it and
    beside it, two acquisitions in one series, files without file meta."""
    ph = make_phantom(6, spacing=(10.0, 9.0, 14.0))
    made = tmp_path_factory.mktemp("plain")

    def plain(case: str) -> list[Path]:  # the same scan as a series of its own (own UIDs) for each case
        return write_dicom_series(ph.image, ph.affine, made / case, patient_id=f"B6-{case}", seed=6)

    root = tmp_path_factory.mktemp("exports")
    anonymised(plain("anon"), root / "anon")
    (root / "enhanced").mkdir()
    enhanced(plain("enhanced"), root / "enhanced" / "ct.dcm", JPEG2000Lossless)
    scout = plain("scout")
    shutil.copytree(scout[0].parent, root / "scout")
    add_scout(scout, root / "scout" / "in-series.dcm")
    add_scout(scout, root / "scout" / "topogram.dcm", same_series=False)
    twice = plain("acquisitions")
    shutil.copytree(twice[0].parent, root / "acquisitions")
    second_acquisition(twice, root / "acquisitions")
    without_file_meta(plain("old"), root / "old")
    out = root.parent / f"{root.name}-out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ARENA_SEG_DEFAULT_MODEL", str(network))
        rc = main(["infer", "--input", str(root), "--output", str(out), "--no-progress"])
    report = json.loads((out / "report.json").read_text())
    done = {e["folder"]: e for e in report["series"] if e["status"] != "skipped"}
    return plain("reference"), root, out, rc, done, report


def test_every_series_done_and_exit_0(exports, capsys):
    _, _, _, rc, entries, report = exports
    assert rc == 0
    assert report["summary"]["failed"] == 0 and report["summary"]["done"] == 5 and report["summary"]["skipped"] == 1
    assert set(entries) == {"anon", "enhanced", "scout", "acquisitions", "old"}
    (scout,) = [e for e in report["series"] if e["status"] == "skipped"]
    assert scout["folder"] == "scout" and scout["reason"] == "localizer (scout) images only, not a volume"


def test_warnings_say_what_was_left_out(exports):
    entries = exports[4]
    anon = entries["anon"]
    assert anon["series_instance_uid"] == "" and set(anon["outputs"]) == {"nifti", "labels"}
    assert anon["warnings"][0].startswith("no SeriesInstanceUID: grouped by folder") and "nouid-" in anon["warnings"][0]
    assert anon["warnings"][1] == ("DICOM SEG left out: the source images have no usable StudyInstanceUID, "
                                   "SeriesInstanceUID, SOPInstanceUID, SOPClassUID to reference")
    assert entries["scout"]["warnings"] == ["1 localizer image(s) left out (ImageType LOCALIZER)"]
    assert len(entries["acquisitions"]["warnings"]) == 1
    assert entries["acquisitions"]["warnings"][0].startswith("2 acquisitions in one series (AcquisitionNumber 1:")
    for folder in ("enhanced", "old"):
        assert entries[folder]["warnings"] == [] and set(entries[folder]["outputs"]) == {"nifti", "labels", "seg"}


def test_masks_on_the_grid_of_an_independent_reader(exports):
    plain, root, out, _, entries, _ = exports
    array, affine = sitk_read(plain)
    size = array.shape
    for folder, e in entries.items():
        mask = nib.load(out / e["outputs"]["nifti"])
        if folder == "anon":  # GDCM does not group files without UIDs: the headers, converted as dcm2niix does
            size_a, affine_a = dcm2niix_style(sorted((root / "anon").iterdir()))
            assert mask.shape == size_a and np.allclose(mask.affine, affine_a, atol=1e-4)
        assert mask.shape == size, folder
        np.testing.assert_allclose(mask.affine, affine, atol=1e-4, err_msg=folder)


def test_seg_of_the_enhanced_ct_references_its_frames(exports):
    _, root, out, _, entries, _ = exports
    e = entries["enhanced"]
    seg = hd.seg.segread(str(out / e["outputs"]["seg"]))
    source = pydicom.dcmread(root / "enhanced" / "ct.dcm", stop_before_pixels=True)
    assert {u for _, _, u in seg.get_source_image_uids()} == {source.SOPInstanceUID}
    vol = read_dicom_series([root / "enhanced" / "ct.dcm"])
    labels = json.loads((out / e["outputs"]["labels"]).read_text())
    back, _ = read_segmentation(out / e["outputs"]["seg"], vol, labels.get)
    np.testing.assert_array_equal(back, np.asarray(nib.load(out / e["outputs"]["nifti"]).dataobj))


def test_seg_only_falls_back_to_nifti(exports, network, tmp_path):
    from arena_seg.inference.batch import BatchRunner

    root = exports[1]
    runner = BatchRunner.from_model(str(network), formats=["seg"])
    (entry,) = runner.run([root / "anon"], tmp_path / "out")["series"]
    assert entry["status"] == "done" and set(entry["outputs"]) == {"nifti", "labels"}
    assert entry["warnings"][-1].endswith("; the mask was written as NIfTI instead")
