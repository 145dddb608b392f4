"""End to end: the real `monailabel start_server --app apps/arena_seg`, driven by MONAI Label's own client as 3D
Slicer drives it: /info, foundation infer, labels of a novel organ (Slicer .nrrd with label_info, NIfTI by id,
.seg.nrrd), train, arena infer, a second version, an older version served; bad requests answered 4xx.

The network is tiny, random and trained for one epoch, so the Dice printed here says nothing about quality (the
bound asserted is only that it is a number in [0, 1]); the quality measurement is the lead's benchmark.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from app_support import APP_DIR, GALLBLADDER, VENV_BIN, dice, running, server_env, truth, write_nifti, write_seg_nrrd
from lib.writer import write_result
from monailabel.client import MONAILabelClient
from monailabel.client.client import MONAILabelUtils

from arena_seg.commands.serve import free_port, server_alive
from arena_seg.data.volumes import read_volume

START_TIMEOUT = 180  # s; the server imports torch, MONAI and the app on a busy 2-core machine
TRAIN_TIMEOUT = 300


@dataclass
class Server:
    url: str
    studies: Path
    model_dir: Path
    log: Path
    client: MONAILabelClient


@pytest.fixture(scope="module")
def server(tmp_path_factory, phantom_dir, coarse_network_dir):
    root = tmp_path_factory.mktemp("server")
    studies = root / "studies"
    studies.mkdir()
    for image in sorted((phantom_dir / "images").glob("*.nii.gz"))[:5]:
        shutil.copy(image, studies)
    port = free_port()
    cmd = [str(VENV_BIN / "monailabel"), "start_server", "--app", str(APP_DIR), "--studies", str(studies),
           "--host", "127.0.0.1", "--port", str(port), "--conf", "labels", "gallbladder",
           "--conf", "model_dir", str(root / "model")]
    url = f"http://127.0.0.1:{port}"
    log = root / "server.log"
    with running(cmd, log, lambda: server_alive(url), START_TIMEOUT, root, server_env(coarse_network_dir)):
        yield Server(url, studies, root / "model", log, MONAILabelClient(url, tmpdir=str(root / "client")))


def _status(call) -> tuple[int, str]:
    """(HTTP status, message) of a client call that must fail."""
    with pytest.raises(Exception) as err:
        call()
    text = str(getattr(err.value, "msg", err.value))
    match = re.search(r"Status: (\d+)", text)
    assert match, text
    return int(match.group(1)), text


def _batch_infer(url: str, model: str, images: str = "all") -> dict:
    """POST /batch/infer/<model> with the endpoint's default params (device cuda) and wait for it."""
    params = {"device": "cuda", "multi_gpu": True, "label_tag": "original", "max_workers": 1}
    status, body, *_ = MONAILabelUtils.http_method("POST", url, f"/batch/infer/{model}?images={images}&run_sync=true",
                                               params)
    body = body.decode() if isinstance(body, bytes) else body
    if status != 200:
        raise RuntimeError(f"Status: {status}; {body}")
    return json.loads(body)


def _wait_for_training(client: MONAILabelClient) -> dict:
    deadline = time.time() + TRAIN_TIMEOUT
    while time.time() < deadline:
        status = client.train_status()
        if status.get("status") not in ("SUBMITTED", "RUNNING"):
            return status
        time.sleep(2)
    pytest.fail(f"training did not finish in {TRAIN_TIMEOUT} s: {client.train_status()}")


@pytest.mark.slow
def test_info_lists_both_models_and_the_trainer(server):
    info = server.client.info()
    assert {k: v["type"] for k, v in info["models"].items()} == {"foundation": "segmentation", "arena": "segmentation"}
    foundation = info["models"]["foundation"]["labels"]
    assert info["models"]["arena"]["labels"] == {**foundation, "gallbladder": max(foundation.values()) + 1}
    assert {"max_epochs", "method", "rank", "lam", "lr", "val_split"} <= set(info["trainers"]["arena"]["config"])
    assert "uncertainty" in info["strategies"] and "config" not in info


@pytest.mark.slow
def test_bad_requests_are_4xx_and_the_server_keeps_serving(server, phantom_dir, tmp_path):
    c = server.client
    checks = {
        "unknown model": lambda: c.infer("segmentation_spleen", "phantom_000", {}),
        "no adapted model yet": lambda: c.infer("arena", "phantom_000", {}),
        "0 of 5 scans labelled": lambda: c.train_start("arena", {"max_epochs": 1}),
        "max_epochs": lambda: c.train_start("arena", {"max_epochs": "many"}),
        "not in the datastore": lambda: c.infer("foundation", "../../../../../../../../etc/passwd", {}),
        "unknown trainer": lambda: c.train_start("segmentation", {}),
        "unknown model 'segmentation'": lambda: _batch_infer(server.url, "segmentation"),
        "run the `arena` trainer": lambda: _batch_infer(server.url, "arena"),
    }
    label, affine = truth(phantom_dir, "phantom_001")  # another phantom's grid
    wrong = write_nifti((label == GALLBLADDER).astype(np.uint8), affine, tmp_path / "wrong.nii.gz")
    checks["has shape"] = lambda: c.save_label("phantom_000", str(wrong), params={})
    for message, call in checks.items():
        status, text = _status(call)
        assert 400 <= status < 500 and message in text, (message, text)
        assert server_alive(server.url), message
    assert not list((server.studies / "labels" / "final").iterdir())  # the bad label was not stored
    assert c.train_status(check_if_running=True) is False  # no task was submitted


@pytest.mark.slow
def test_foundation_infer_gives_a_named_mask_on_the_image_grid(server):
    result, params = server.client.infer("foundation", "phantom_004", {"result_extension": ".nrrd",
                                                                       "result_dtype": "uint8"})
    mask, image = read_volume(result, "label"), read_volume(server.studies / "phantom_004.nii.gz")
    assert mask.shape == image.shape and np.allclose(mask.affine, image.affine, atol=1e-3)
    assert mask.array.dtype == np.uint8 and params["label_names"]["liver"] == 1


@pytest.mark.slow
def test_labels_train_infer_and_versions(server, phantom_dir, tmp_path):
    c = server.client
    # Slicer labelmap .nrrd: liver drawn as segment 1, gallbladder as segment 2, named in label_info
    label, affine = truth(phantom_dir, "phantom_000")
    values = np.zeros(label.shape, np.uint8)
    values[label == 1], values[label == GALLBLADDER] = 1, 2
    nrrd_file = tmp_path / "phantom_000.nrrd"
    shutil.move(write_result(values, affine, ".nrrd", "uint8"), nrrd_file)
    c.save_label("phantom_000", str(nrrd_file), params={"label_info": [{"name": "liver", "idx": 1},
                                                                       {"name": "gallbladder", "idx": 2}]})
    label, affine = truth(phantom_dir, "phantom_001")  # NIfTI without label_info: ids 1..n of --conf labels
    c.save_label("phantom_001", str(write_nifti(label == GALLBLADDER, affine, tmp_path / "phantom_001.nii.gz")))
    label, affine = truth(phantom_dir, "phantom_002")  # .seg.nrrd with the segment named in its header
    seg = write_seg_nrrd([(label == GALLBLADDER).astype(np.uint8)], affine, [("gallbladder", 0, 1)],
                         tmp_path / "phantom_002.seg.nrrd")
    c.save_label("phantom_002", str(seg))
    stored = {p.name: read_volume(p, "label").array for p in (server.studies / "labels" / "final").iterdir()}
    assert sorted(stored) == ["phantom_000.nii.gz", "phantom_001.nii.gz", "phantom_002.nii.gz"]
    assert np.array_equal(stored["phantom_000.nii.gz"] == 1, truth(phantom_dir, "phantom_000")[0] == GALLBLADDER)

    options = {"max_epochs": 1, "num_samples": 1, "rank": 4, "val_split": 0.34, "method": "arena"}
    assert c.train_start("arena", options)["status"] in ("SUBMITTED", "RUNNING")
    status = _wait_for_training(c)
    details = "\n".join(status.get("details", []))
    assert status["status"] == "DONE", details
    assert "arena epoch 1/1" in details and "val Dice" in details and "effective rank" in details
    stats = c.info()["train_stats"]["arena"]
    assert stats["epoch"] == 1 and stats["total_epochs"] == 1 and stats["version"] == "v001"
    assert isinstance(stats["best_metric"], float) and stats["total_time"] > 0
    assert stats["metric"].startswith("validation Dice")

    result, params = c.infer("arena", "phantom_004", {"result_extension": ".nrrd", "result_dtype": "uint8"})
    mask, image = read_volume(result, "label"), read_volume(server.studies / "phantom_004.nii.gz")
    assert mask.shape == image.shape and np.allclose(mask.affine, image.affine, atol=1e-3)
    # one label map: the foundation's organs and the learned gallbladder on the id after them
    foundation = c.info()["models"]["foundation"]["labels"]
    assert params["label_names"] == {**foundation, "gallbladder": max(foundation.values()) + 1}
    assert params["version"] == "v001" and params["versions"] == {"gallbladder": "v001"}
    assert set(np.unique(mask.array)) <= {0, *params["label_names"].values()}
    score = dice(mask.array == params["label_names"]["gallbladder"],
                 truth(phantom_dir, "phantom_004")[0] == GALLBLADDER)
    print(f"arena Dice on phantom_004 after 1 epoch of a random tiny network: {score:.3f}")
    assert 0.0 <= score <= 1.0

    # a second run is a second version (head only this time: cheap, and shows the method option passes through)
    assert c.train_start("arena", {**options, "val_split": 0.0, "method": "linear"})
    assert _wait_for_training(c)["status"] == "DONE"
    arena_dir = server.model_dir / "arena"
    assert os.readlink(arena_dir / "latest") == "versions/v002"
    assert {p.name for p in (arena_dir / "versions").iterdir()} == {"v001", "v002"}
    v001, v002 = (json.loads((arena_dir / "versions" / v / "manifest.json").read_text()) for v in ("v001", "v002"))
    assert (arena_dir / "versions" / "v001" / "adapter.safetensors").is_file() and v001["method"] == "arena"
    assert v001["data_ids"] and v001["val_ids"] and v001["effective_ranks"] and v001["labels"] == {"gallbladder": 1}
    assert v002["method"] == "linear" and sorted(v002["data_ids"]) == ["phantom_000", "phantom_001", "phantom_002"]
    assert (arena_dir / "versions" / "v002" / "network" / "network.json").is_file()
    # no scan held out: the accuracy bar shows the training Dice, and /info says that is what it is
    stats = c.info()["train_stats"]["arena"]
    assert "training Dice" in v002["metric"] and "training Dice" in stats["metric"]
    assert set(v002["train_dice"]) == {"gallbladder"}
    assert stats["best_metric"] == pytest.approx(v002["best_metric"])
    assert v002["best_metric"] == pytest.approx(v002["train_dice"]["gallbladder"])
    info = c.info()
    assert info["models"]["arena"]["config"]["version"] == ["latest", "v002", "v001"]
    _, params = c.infer("arena", "phantom_004", {"version": "v001"})  # an older version, on request
    assert params["version"] == "v001"
    _, params = c.infer("arena", "phantom_004", {})
    assert params["version"] == "v002"

    # batch infer over the scans nobody labelled: one loaded model, each mask saved as the scan's label
    result = _batch_infer(server.url, "arena", images="unlabeled")
    assert result["_summary"].startswith("2 series: 2 done"), result
    for image_id in ("phantom_003", "phantom_004"):
        assert result[image_id]["status"] == "done" and "gallbladder" in result[image_id]["volumes_ml"]
        stored = read_volume(server.studies / "labels" / "original" / f"{image_id}.nii.gz", "label")
        image = read_volume(server.studies / f"{image_id}.nii.gz")
        served = c.info()["models"]["arena"]["labels"]  # the foundation's organs and the learned one
        assert stored.shape == image.shape and set(np.unique(stored.array)) <= {0, *served.values()}
    assert server_alive(server.url)
