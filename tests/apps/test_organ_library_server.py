"""The organ library through the real server and monailabel's client: organs added by labels while it runs, one run
per organ (the other organs' files byte-identical), one infer with every organ, a refused unknown organ, and
training while annotating (``--conf auto_train true``): label saves alone produce new, warm-started versions.

The network is tiny, random and trained for one epoch: these tests check the loop, not the Dice.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from app_support import GALLBLADDER, Server, snapshot, truth, write_nifti
from monailabel.client import MONAILabelClient

from arena_seg.commands.serve import free_port, server_alive
from arena_seg.data.volumes import read_volume
from arena_seg.organs import PHANTOM_LABELS

pytestmark = pytest.mark.slow  # servers and training runs
PANCREAS = PHANTOM_LABELS["pancreas"]
QUICK = {"max_epochs": 1, "num_samples": 1, "rank": 4, "val_split": 0}
TIMEOUT = 300


def _server(root: Path, phantom_dir: Path, network: Path, **conf: str) -> Server:
    studies = root / "studies"
    studies.mkdir(parents=True)
    for image in sorted((phantom_dir / "images").glob("*.nii.gz"))[:5]:
        shutil.copy(image, studies)
    srv = Server(root, studies, root / "model", network, free_port(), conf={"epochs": "1", **conf})
    srv.start()
    return srv


@pytest.fixture(scope="module")
def server(tmp_path_factory, phantom_dir, coarse_network_dir):
    srv = _server(tmp_path_factory.mktemp("library-server"), phantom_dir, coarse_network_dir)
    try:
        yield srv, MONAILabelClient(srv.url, tmpdir=str(srv.root / "client"))
    finally:
        srv.kill(signal.SIGTERM)


def _save(client: MONAILabelClient, phantom_dir: Path, image: str, organ: str, value: int, tmp: Path) -> dict:
    """Save the phantom's truth of one organ as a Slicer labelmap would come: value 1, named in label_info."""
    label, affine = truth(phantom_dir, image)
    path = write_nifti(label == value, affine, tmp / f"{image}-{organ}.nii.gz")
    return client.save_label(image, str(path), params={"label_info": [{"name": organ, "idx": 1}]})


def _wait(client: MONAILabelClient) -> dict:
    deadline = time.time() + TIMEOUT
    while time.time() < deadline:
        status = client.train_status()
        if status.get("status") not in ("SUBMITTED", "RUNNING"):
            return status
        time.sleep(1)
    pytest.fail(f"training did not finish in {TIMEOUT} s")


def _status(call) -> tuple[int, str]:
    with pytest.raises(Exception) as err:
        call()
    text = str(getattr(err.value, "msg", err.value))
    match = re.search(r"Status: (\d+)", text)
    assert match, text
    return int(match.group(1)), text


def _versions(srv: Server) -> list[str]:
    folder = srv.model_dir / "arena" / "versions"
    return sorted(p.name for p in folder.iterdir() if re.fullmatch(r"v\d+", p.name)) if folder.is_dir() else []


def _manifest(srv: Server, version: str) -> dict:
    return json.loads((srv.model_dir / "arena" / "versions" / version / "manifest.json").read_text())


def test_organ_a_then_a_new_organ_b_in_its_own_run_then_one_infer_for_all(server, phantom_dir, tmp_path):
    srv, c = server
    assert "organs" in c.info()["trainers"]["arena"]["config"]
    for image in ("phantom_000", "phantom_001"):
        _save(c, phantom_dir, image, "gallbladder", GALLBLADDER, tmp_path)
    c.train_start("arena", {**QUICK, "organs": "gallbladder"})
    assert _wait(c)["status"] == "DONE"
    versions = srv.model_dir / "arena" / "versions"
    a_files = snapshot(versions / "v001")
    assert (versions / "v001" / "adapter.safetensors").is_file()

    # a new organ, not in --conf labels, named by the label: it gets the next id, and Slicer's list shows it
    for image in ("phantom_002", "phantom_003"):
        _save(c, phantom_dir, image, "Pancreas", PANCREAS, tmp_path)
    organs = json.loads((srv.model_dir / "arena" / "organs.json").read_text())["organs"]
    assert organs == {"gallbladder": 1, "pancreas": 2}
    foundation = c.info()["models"]["foundation"]["labels"]
    top = max(foundation.values())
    assert c.info()["models"]["arena"]["labels"] == {**foundation, "gallbladder": top + 1, "pancreas": top + 2}

    status, text = _status(lambda: c.train_start("arena", {**QUICK, "organs": "duodenum"}))
    assert status == 400 and "unknown organ 'duodenum'" in text and "pancreas (2 scan(s))" in text
    assert server_alive(srv.url) and c.train_status(check_if_running=True) is False  # nothing was submitted

    c.train_start("arena", {**QUICK, "organs": ["pancreas"]})
    assert _wait(c)["status"] == "DONE"
    assert _versions(srv) == ["v001", "v002"]
    assert snapshot(versions / "v001") == a_files  # organ A's files byte-identical
    m = _manifest(srv, "v002")
    assert m["labels"] == {"pancreas": 1} and m["label_ids"] == {"pancreas": 2}
    assert sorted(m["data_ids"]) == ["phantom_002", "phantom_003"]  # only the labels that contain it

    result, params = c.infer("arena", "phantom_004", {"result_extension": ".nrrd", "result_dtype": "uint8"})
    assert params["versions"] == {"gallbladder": "v001", "pancreas": "v002"}
    assert params["label_names"] == {**foundation, "gallbladder": top + 1, "pancreas": top + 2}
    mask = read_volume(result, "label").array
    assert set(np.unique(mask)) <= {0, *params["label_names"].values()}
    library = {e["organ"]: e for e in c.info()["models"]["arena"]["organ_library"]}
    assert {o: (e["id"], e["version"], e["shots"]) for o, e in library.items()} == {
        "gallbladder": (1, "v001", 2), "pancreas": (2, "v002", 2)}


def _wait_for(predicate, what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(1)


def _idle(c: MONAILabelClient) -> bool:
    """Nothing queued for auto-training and no training task waiting or running."""
    return not c.info()["auto_train"]["pending"] and c.train_status().get("status") not in ("SUBMITTED", "RUNNING")


def test_auto_train_turns_label_saves_into_warm_started_versions(tmp_path_factory, phantom_dir,
                                                                 coarse_network_dir, tmp_path):
    srv = _server(tmp_path_factory.mktemp("auto-train"), phantom_dir, coarse_network_dir, auto_train="true",
                  auto_train_epochs="2")
    c = MONAILabelClient(srv.url, tmpdir=str(srv.root / "client"))
    try:
        assert c.info()["auto_train"]["epochs"] == 2
        answer = _save(c, phantom_dir, "phantom_000", "gallbladder", GALLBLADDER, tmp_path)
        assert answer["auto_train"]["pending"] == ["gallbladder"]
        _wait_for(lambda: _idle(c) and _versions(srv) == ["v001"], "the first (full) auto-training run")
        assert _manifest(srv, "v001")["warm_start"] is None and _manifest(srv, "v001")["auto_train"] is True

        _save(c, phantom_dir, "phantom_001", "gallbladder", GALLBLADDER, tmp_path)
        _wait_for(lambda: c.train_status().get("status") == "RUNNING", "the update to start")
        for image in ("phantom_002", "phantom_003"):  # a burst while it trains: one more run, not two
            _save(c, phantom_dir, image, "gallbladder", GALLBLADDER, tmp_path)
        _wait_for(lambda: "v003" in _versions(srv), "the queued update")
        _wait_for(lambda: _idle(c), "auto-training to go idle")
        time.sleep(4)  # longer than the queue's settle and poll times: nothing else may start
        assert _versions(srv) == ["v001", "v002", "v003"] and c.train_status().get("status") == "DONE"
        for version, source in (("v002", "v001"), ("v003", "v002")):
            m = _manifest(srv, version)
            assert m["warm_start"] == source and m["epochs_run"] == 2 and m["auto_train"] is True
        assert len(_manifest(srv, "v003")["data_ids"]) == 4
        _, params = c.infer("arena", "phantom_004", {})
        assert params["versions"] == {"gallbladder": "v003"}  # the infer after it landed uses it
    finally:
        srv.kill(signal.SIGTERM)
