"""The app in-process (no server): what /info shows Slicer, --conf checks, versions served, bad requests."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from app_support import APP_DIR, GALLBLADDER, app_class, save_version, truth, write_nifti
from fastapi import HTTPException
from lib.conf import AppConf
from lib.versions import VersionStore
from monailabel.config import settings

from arena_seg.data.volumes import read_volume
from arena_seg.errors import InputError


@pytest.fixture()
def make_app(phantom_dir, coarse_default, tmp_path, monkeypatch):
    monkeypatch.setattr(settings, "MONAI_LABEL_DATASTORE_AUTO_RELOAD", False)
    monkeypatch.setattr(settings, "MONAI_LABEL_SESSIONS", False)
    studies = tmp_path / "studies"
    studies.mkdir()
    for name in ("phantom_000", "phantom_001"):
        shutil.copy(phantom_dir / "images" / f"{name}.nii.gz", studies)

    def make(**conf: str):
        return app_class()(str(APP_DIR), str(studies), {"labels": "gallbladder", "model_dir": str(tmp_path / "m"),
                                                        **conf})

    return make


def test_info_lists_what_slicer_needs(make_app):
    info = make_app().info()
    assert "config" not in info  # Slicer refuses servers whose /info has a top-level config
    assert {k: v["type"] for k, v in info["models"].items()} == {"foundation": "segmentation", "arena": "segmentation"}
    assert info["models"]["foundation"]["labels"]["liver"] == 1
    # before training: the foundation's organs and the organs to draw, on the ids they will keep
    assert info["models"]["arena"]["labels"] == {**info["models"]["foundation"]["labels"], "gallbladder": 7}
    assert "no adapted model yet" in info["models"]["arena"]["description"]
    assert info["models"]["arena"]["config"]["version"] == ["latest"]
    config = info["trainers"]["arena"]["config"]
    assert {"max_epochs", "method", "rank", "lam", "lr", "val_split"} <= set(config)
    assert info["train_stats"] == {"arena": {}}
    assert set(info["strategies"]) == {"random", "first", "uncertainty"}
    assert info["labels"][-1] == "gallbladder"


@pytest.mark.slow
def test_infer_arena_serves_every_learned_organ_with_pins(make_app, coarse_network_dir, tmp_path):
    store = VersionStore(tmp_path / "m" / "arena")
    assert save_version(store, coarse_network_dir, "gallbladder") == "v001"
    assert save_version(store, coarse_network_dir, "pancreas") == "v002"
    assert save_version(store, coarse_network_dir, "gallbladder") == "v003"
    app = make_app(version="v001")
    assert app.info()["models"]["arena"]["config"]["version"] == ["v001", "latest", "v003", "v002"]
    base = {"liver": 1, "spleen": 2, "kidney_right": 3, "kidney_left": 4, "aorta": 5, "stomach": 6}
    expected = {**base, "gallbladder": 7, "pancreas": 8}  # --conf labels first, then in the order learned
    assert app.info()["models"]["arena"]["labels"] == expected
    assert [(e["organ"], e["version"]) for e in app.info()["models"]["arena"]["organ_library"]] == [
        ("gallbladder", "v003"), ("pancreas", "v002")]
    result = app.infer({"model": "arena", "image": "phantom_000"})  # --conf version v001 pins gallbladder
    assert result["params"]["versions"] == {"gallbladder": "v001", "pancreas": "v002"}
    assert result["params"]["label_names"] == expected
    mask = read_volume(result["file"], "label").array
    assert set(np.unique(mask)) <= {0, *expected.values()}
    result = app.infer({"model": "arena", "image": "phantom_000", "version": "latest"})
    assert result["params"]["versions"] == {"gallbladder": "v003", "pancreas": "v002"}
    result = app.infer({"model": "arena", "image": "phantom_000", "version": "latest", "versions": "gallbladder=v001"})
    assert result["params"]["versions"] == {"gallbladder": "v001", "pancreas": "v002"}
    with pytest.raises(HTTPException) as err:
        app.infer({"model": "arena", "image": "phantom_000", "version": "v009"})
    assert err.value.status_code == 404 and "v001, v002, v003" in err.value.detail
    with pytest.raises(HTTPException) as err:
        app.infer({"model": "arena", "image": "phantom_000", "versions": {"pancreas": "v001"}})
    assert err.value.status_code == 400 and "no version 'v001'" in err.value.detail


@pytest.mark.parametrize("request_, status, message", [
    ({"model": "segmentation_spleen", "image": "phantom_000"}, 404, "unknown model"),
    ({"model": "foundation", "image": "../../../../../../etc/passwd"}, 404, "not in the datastore"),
    ({"model": "foundation", "image": "/etc/passwd"}, 404, "not in the datastore"),
    ({"model": "arena", "image": "phantom_000"}, 409, "no adapted model yet"),
    ({"model": "foundation", "image": "phantom_000", "result_extension": ".png"}, 400, "result_extension"),
])
def test_bad_infer_requests_are_4xx(make_app, request_, status, message):
    with pytest.raises(HTTPException) as err:
        make_app().infer(request_)
    assert err.value.status_code == status and message in err.value.detail


def test_train_without_labels_or_with_bad_options_is_4xx(make_app):
    app = make_app()
    with pytest.raises(HTTPException, match="0 of 2 scans labelled") as err:
        app.check_train("arena", {})
    assert err.value.status_code == 400
    with pytest.raises(HTTPException) as err:
        app.check_train("arena", {"max_epochs": -3})
    assert err.value.status_code == 400 and "max_epochs" in err.value.detail
    with pytest.raises(HTTPException) as err:
        app.check_train("segmentation", {})
    assert err.value.status_code == 404
    with pytest.raises(HTTPException, match="no organs"):
        app_without_labels = make_app(labels="")
        app_without_labels.check_train("arena", {})


@pytest.mark.slow
def test_batch_infer_saves_every_mask_as_a_label(make_app, phantom_dir, tmp_path):
    import json

    import nibabel as nib
    import numpy as np

    app = make_app()
    # the endpoint's default request asks for cuda and several GPUs; a CPU server must still run it
    result = app.batch_infer({"model": "foundation", "images": "all", "device": "cuda", "multi_gpu": True})
    assert set(result) == {"phantom_000", "phantom_001", "_summary"}
    assert result["_summary"].startswith("2 series: 2 done, 0 skipped, 0 failed")
    datastore = app.datastore()
    for image_id in ("phantom_000", "phantom_001"):
        entry = result[image_id]
        assert entry["status"] == "done" and entry["label"]
        label = nib.load(datastore.get_label_uri(image_id, "original"))
        image = nib.load(datastore.get_image_uri(image_id))
        assert label.shape == image.shape and np.allclose(label.affine, image.affine, atol=1e-4)
        values = np.asarray(label.dataobj)
        assert set(np.unique(values)) <= {0, 1, 2, 3, 4, 5, 6}
        voxel_ml = abs(np.linalg.det(label.affine[:3, :3])) / 1000
        assert entry["volumes_ml"]["liver"] == pytest.approx((values == 1).sum() * voxel_ml, abs=1e-3)
    reports = list((tmp_path / "m" / "batch").glob("foundation-*/report.json"))
    assert len(reports) == 1 and json.loads(reports[0].read_text())["summary"]["done"] == 2


def test_batch_infer_checks_the_model_first(make_app):
    app = make_app()
    with pytest.raises(HTTPException) as err:
        app.check_batch_infer("segmentation", {})
    assert err.value.status_code == 404
    with pytest.raises(HTTPException) as err:
        app.check_batch_infer("arena", {})  # no training run yet
    assert err.value.status_code == 409 and "no adapted model yet" in err.value.detail
    app.check_batch_infer("foundation", {})


def test_failed_training_run_keeps_latest(make_app, coarse_network_dir, phantom_dir, tmp_path, monkeypatch):
    import json

    import arena_seg.training.engine as engine

    store = VersionStore(tmp_path / "m" / "arena")
    save_version(store, coarse_network_dir, "gallbladder")
    app = make_app()
    label, affine = truth(phantom_dir, "phantom_000")
    app.datastore().save_label("phantom_000", str(write_nifti(label == GALLBLADDER, affine, tmp_path / "l.nii.gz")),
                               "final", {})

    def diverge(*args, **kwargs):
        raise RuntimeError("loss diverged")

    monkeypatch.setattr(engine, "finetune", diverge)
    with pytest.raises(RuntimeError, match="diverged"):
        app.train({"model": "arena", "max_epochs": 1})
    assert store.latest() == "v001" and store.list() == ["v001"] and not list(store.versions_dir.glob(".stage-*"))
    stats = json.loads((store.root / "train_stats.json").read_text())
    assert stats["status"] == "FAILED" and "diverged" in stats["error"] and stats["total_time"] >= 0


@pytest.mark.parametrize("conf, key", [({"foundation": "nope"}, "foundation"), ({"epochs": "0"}, "epochs"),
                                       ({"labels": "liver,liver"}, "labels")])
def test_bad_conf_names_the_key(conf, key, tmp_path):
    with pytest.raises(InputError, match=f"--conf {key}"):
        AppConf.from_conf(conf, tmp_path)
