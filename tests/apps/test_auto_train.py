"""The auto-trainer's queue (one run at a time, bursts coalesced, a refused start reported) and the organs a train
request may name, checked in-process before any task starts."""

from __future__ import annotations

import json
import shutil
import threading
import time

import numpy as np
import pytest
from app_support import APP_DIR, GALLBLADDER, app_class, snapshot, truth, write_nifti
from fastapi import HTTPException
from lib.auto_train import AutoTrainer
from monailabel.config import settings

import arena_seg.training.warm_start as warm_start
from arena_seg.organs import PHANTOM_LABELS


class FakeTraining:
    """Stands in for MONAI Label's train task: a started run keeps the trainer busy until ``finish()``."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.running = False
        self.refuse: set[str] = set()
        self.lock = threading.Lock()

    def start(self, organ: str) -> dict | None:
        with self.lock:
            if organ in self.refuse:
                self.refuse.discard(organ)
                raise HTTPException(status_code=400, detail=f"no final label contains {organ}")
            self.started.append(organ)
            self.running = True
            return {"organs": organ}

    def busy(self) -> bool:
        return self.running

    def finish(self) -> None:
        self.running = False


def _until(predicate, timeout: float = 10.0) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, "timed out"
        time.sleep(0.02)


def test_a_burst_of_saves_is_one_run_per_organ_and_never_two_at_once():
    fake = FakeTraining()
    auto = AutoTrainer(fake.start, fake.busy, settle_s=0.3, poll_s=0.02)
    auto.ensure_running()
    for image in ("a", "b", "c"):
        auto.label_saved(image, ["gallbladder"])
    auto.label_saved("d", ["pancreas", "gallbladder"])
    _until(lambda: fake.started)
    time.sleep(0.3)
    assert fake.started == ["gallbladder"]  # the other organ waits for this run
    auto.label_saved("e", ["gallbladder"])  # saved during the run: it queues the organ again, once
    auto.label_saved("f", ["gallbladder"])
    fake.finish()
    _until(lambda: len(fake.started) == 2)
    assert fake.started == ["gallbladder", "pancreas"]
    fake.finish()
    _until(lambda: len(fake.started) == 3)
    fake.finish()
    time.sleep(0.5)
    assert fake.started == ["gallbladder", "pancreas", "gallbladder"] and auto.status()["pending"] == []
    assert [r["organ"] for r in auto.status()["runs"]] == fake.started


def test_a_refused_start_is_reported_and_the_queue_goes_on():
    fake = FakeTraining()
    fake.refuse = {"pancreas"}
    auto = AutoTrainer(fake.start, fake.busy, settle_s=0.05, poll_s=0.02)
    auto.ensure_running()
    auto.label_saved("a", ["pancreas", "gallbladder"])
    _until(lambda: fake.started == ["gallbladder"])
    assert "no final label contains pancreas" in auto.status()["last_error"]


@pytest.fixture()
def make_app(phantom_dir, coarse_default, tmp_path, monkeypatch):
    monkeypatch.setattr(settings, "MONAI_LABEL_DATASTORE_AUTO_RELOAD", False)
    monkeypatch.setattr(settings, "MONAI_LABEL_SESSIONS", False)
    studies = tmp_path / "studies"
    studies.mkdir()
    for name in ("phantom_000", "phantom_001", "phantom_002"):
        shutil.copy(phantom_dir / "images" / f"{name}.nii.gz", studies)

    def make(**conf: str):
        return app_class()(str(APP_DIR), str(studies), {"labels": "gallbladder", "model_dir": str(tmp_path / "m"),
                                                        **conf})

    return make


def _save(app, phantom_dir, tmp_path, image: str, organ: str, value: int) -> None:
    label, affine = truth(phantom_dir, image)
    path = write_nifti((label == value).astype(np.uint8), affine, tmp_path / f"{image}.nii.gz")
    app.datastore().save_label(image, str(path), "final", {"label_info": [{"name": organ, "idx": 1}]})


def test_train_organs_are_checked_against_the_labels(make_app, phantom_dir, tmp_path):
    app = make_app()
    _save(app, phantom_dir, tmp_path, "phantom_000", "gallbladder", GALLBLADDER)
    app.check_train("arena", {"organs": " GallBladder"})  # names match case-insensitively
    for options, status, message in [
        ({"organs": "spleen_tail"}, 400, "unknown organ 'spleen_tail'"),
        ({"organs": 7}, 400, "organ names"),
        ({"organs": "gallbladder", "warm_start": True}, 400, "no version to start from"),
        ({"organs": "gallbladder", "warm_start": "maybe"}, 400, "warm_start"),
    ]:
        with pytest.raises(HTTPException) as err:
            app.check_train("arena", options)
        assert err.value.status_code == status and message in err.value.detail, err.value.detail
    # a new organ named by a label is known from then on; without a label containing it, it cannot be trained
    _save(app, phantom_dir, tmp_path, "phantom_001", "pancreas", PHANTOM_LABELS["pancreas"])
    app.check_train("arena", {"organs": ["pancreas", "gallbladder"]})
    app.datastore().remove_label("phantom_001", "final")
    with pytest.raises(HTTPException, match="no final label contains pancreas"):
        app.check_train("arena", {"organs": "pancreas"})
    assert app.models.registry.ids() == {"gallbladder": 1, "pancreas": 2}


def test_with_auto_train_a_saved_final_label_queues_its_organs(make_app, phantom_dir, tmp_path):
    app = make_app(auto_train="true", auto_train_epochs="3")
    assert app.info()["auto_train"]["epochs"] == 3
    _save(app, phantom_dir, tmp_path, "phantom_000", "gallbladder", GALLBLADDER)
    assert app.on_save_label("phantom_000", "phantom_000")["auto_train"]["pending"] == ["gallbladder"]
    assert "auto_train" not in make_app().info()


@pytest.mark.slow
def test_a_failed_warm_start_keeps_every_version(make_app, phantom_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(settings, "MONAI_LABEL_AUTO_UPDATE_SCORING", False)
    app = make_app()
    _save(app, phantom_dir, tmp_path, "phantom_000", "gallbladder", GALLBLADDER)
    quick = {"model": "arena", "organs": "gallbladder", "max_epochs": 1, "num_samples": 1, "rank": 4, "val_split": 0}
    assert app.train(quick)["version"] == "v001"
    versions = tmp_path / "m" / "arena" / "versions"
    before = snapshot(versions)

    def broken(*args, **kwargs):
        raise ValueError("adapter file does not match its sha256")

    with monkeypatch.context() as patch:
        patch.setattr(warm_start, "load_warm_start", broken)
        with pytest.raises(ValueError, match="sha256"):
            app.train({**quick, "warm_start": True, "auto_train": True})
    assert snapshot(versions) == before and app.versions.latest() == "v001"
    assert app.train({**quick, "warm_start": True})["version"] == "v002"
    assert json.loads((versions / "v002" / "manifest.json").read_text())["warm_start"] == "v001"
    assert {k: v for k, v in snapshot(versions).items() if "v001" in k} == before
