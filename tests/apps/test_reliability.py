"""Reliability of the real server over HTTP: a table of bad inputs (each a 4xx with a message, the server still
serving, nothing stored changed), SIGKILL during training (the last good model served after a restart, no
half-written version, labels intact, training possible again), and concurrent infers during a training run.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import requests
import urllib3
from app_support import GALLBLADDER, TRAIN_TIMEOUT, Server, snapshot, truth

from arena_seg.commands.serve import free_port, server_alive

UPLOAD_LIMIT_MB = 2
IMAGES = ["phantom_000", "phantom_001", "phantom_002", "phantom_003", "phantom_004"]


@pytest.fixture(scope="module")
def server(tmp_path_factory, phantom_dir, coarse_network_dir):
    root = tmp_path_factory.mktemp("reliability")
    studies = root / "studies"
    studies.mkdir()
    for name in IMAGES:
        shutil.copy(phantom_dir / "images" / f"{name}.nii.gz", studies)
    srv = Server(root, studies, root / "model", coarse_network_dir, free_port(), UPLOAD_LIMIT_MB)
    srv.start()
    try:
        yield srv
    finally:
        srv.kill(signal.SIGTERM)


# ---- bad input files -------------------------------------------------------------------------------------------
def _save(array: np.ndarray, affine: np.ndarray, path: Path) -> Path:
    nib.save(nib.Nifti1Image(array, affine), str(path))
    return path


def _truth(phantom_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    label, affine = truth(phantom_dir, "phantom_000")
    return (label == GALLBLADDER).astype(np.uint8), affine


def make_file(kind: str, phantom_dir: Path, tmp: Path) -> Path:
    """A bad (or, for kind "label", good) file of the named kind."""
    label, affine = _truth(phantom_dir)
    path = tmp / f"{kind}.nii.gz"
    good = _save(label, affine, tmp / "good.nii.gz")
    if kind == "label":
        return good
    if kind == "corrupt":
        path.write_bytes(os.urandom(4096))
    elif kind == "truncated":
        data = good.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "truncated_raw":  # a complete gzip stream of half a NIfTI
        path.write_bytes(gzip.compress(gzip.decompress(good.read_bytes())[:1000]))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "2d":
        _save(label[:, :, 0], affine, path)
    elif kind == "4d":
        _save(np.stack([label, label], axis=-1), affine, path)
    elif kind == "nan_image":
        _save(np.full(label.shape, np.nan, dtype=np.float32), affine, path)
    elif kind == "nan_label":
        _save(np.where(label > 0, np.nan, 0).astype(np.float32), affine, path)
    elif kind == "shape":
        _save(label[:, :, :-2], affine, path)
    elif kind == "affine":
        shifted = affine.copy()
        shifted[:3, 3] += 10.0
        _save(label, shifted, path)
    elif kind == "unknown_value":
        _save((label * 5).astype(np.uint8), affine, path)
    elif kind == "negative":
        _save(np.where(label > 0, 1, -1).astype(np.int16), affine, path)
    elif kind == "zero":
        _save(np.zeros_like(label), affine, path)
    elif kind == "absurd":
        header = nib.Nifti1Header()
        header.set_data_shape((30_000, 30_000, 30_000))  # int16 dims: 2.7e13 voxels
        header.set_data_dtype(np.int16)
        header["vox_offset"] = 352
        path = tmp / "absurd.nii"
        path.write_bytes(header.binaryblock + b"\0" * 4 + b"\0" * 1024)
    elif kind == "text_nrrd":
        path = tmp / "notes.nrrd"
        path.write_text("NRRD0004\ntype: what\ndimension: 3\n")
    elif kind == "big":
        path = tmp / "big.nii"
        path.write_bytes(b"\0" * (UPLOAD_LIMIT_MB + 1) * 2**20)
    else:
        raise ValueError(kind)
    return path


def upload_label_chunked(srv: Server, image: str, file: Path) -> requests.Response:
    """The same multipart upload without Content-Length (Transfer-Encoding: chunked), as a streaming client sends."""
    body, content_type = urllib3.encode_multipart_formdata(
        {"label": (file.name, file.read_bytes()), "params": json.dumps({})})
    chunks = (body[i:i + 2**16] for i in range(0, len(body), 2**16))
    return srv.put("/datastore/label", params={"image": image, "tag": "final"}, data=chunks,
                   headers={"Content-Type": content_type})


def upload_label(srv: Server, image: str, file: Path, label_info=None) -> requests.Response:
    params = {"label_info": label_info} if label_info is not None else {}
    with open(file, "rb") as f:
        return srv.put("/datastore/label", params={"image": image, "tag": "final"},
                       files={"label": (file.name, f)}, data={"params": json.dumps(params)})


def upload_image(srv: Server, image_id: str, file: Path) -> requests.Response:
    with open(file, "rb") as f:
        return srv.put("/datastore/", params={"image": image_id}, files={"file": (file.name, f)},
                       data={"params": "{}"})


Request = Callable[[Server, Path, Path], requests.Response]
ORGAN = [{"name": "gallbladder", "idx": 1}]

#: (what is wrong, request, expected status, a word the message must contain)
BAD_INPUTS: list[tuple[str, Request, int, str]] = [
    ("label: corrupt NIfTI", lambda s, d, t: upload_label(s, "phantom_000", make_file("corrupt", d, t)), 400, "read"),
    ("label: truncated gzip", lambda s, d, t: upload_label(s, "phantom_000", make_file("truncated", d, t)), 400,
     "read"),
    ("label: truncated NIfTI data", lambda s, d, t: upload_label(s, "phantom_000", make_file("truncated_raw", d, t)),
     400, "label"),
    ("label: empty file", lambda s, d, t: upload_label(s, "phantom_000", make_file("empty", d, t)), 400, "label"),
    ("label: 2-D", lambda s, d, t: upload_label(s, "phantom_000", make_file("2d", d, t)), 400, "3-D"),
    ("label: 4-D", lambda s, d, t: upload_label(s, "phantom_000", make_file("4d", d, t)), 400, "3-D"),
    ("label: NaN-filled", lambda s, d, t: upload_label(s, "phantom_000", make_file("nan_label", d, t)), 400, "NaN"),
    ("label: other shape", lambda s, d, t: upload_label(s, "phantom_000", make_file("shape", d, t)), 400, "grid"),
    ("label: other affine", lambda s, d, t: upload_label(s, "phantom_000", make_file("affine", d, t)), 400, "grid"),
    ("label: unknown value", lambda s, d, t: upload_label(s, "phantom_000", make_file("unknown_value", d, t)), 400,
     "ids"),
    ("label: negative values", lambda s, d, t: upload_label(s, "phantom_000", make_file("negative", d, t)), 400,
     "negative"),
    ("label: all zero", lambda s, d, t: upload_label(s, "phantom_000", make_file("zero", d, t), ORGAN), 400, "empty"),
    ("label: label_info names no configured organ",
     lambda s, d, t: upload_label(s, "phantom_000", make_file("label", d, t), [{"name": "spleen", "idx": 1}]), 400,
     "learns"),
    ("label: malformed label_info", lambda s, d, t: upload_label(s, "phantom_000", make_file("label", d, t), "x"),
     400, "label_info"),
    ("label: absurd header dimensions", lambda s, d, t: upload_label(s, "phantom_000", make_file("absurd", d, t)),
     400, "voxels"),
    ("label: unknown image", lambda s, d, t: upload_label(s, "nope", make_file("label", d, t)), 404, "datastore"),
    ("label: image id with ..", lambda s, d, t: upload_label(s, "../studies/phantom_000", make_file("label", d, t)),
     404, "datastore"),
    ("label: over the upload limit", lambda s, d, t: upload_label(s, "phantom_000", make_file("big", d, t)), 413,
     "max_upload_mb"),
    ("label: over the upload limit, chunked", lambda s, d, t: upload_label_chunked(s, "phantom_000",
                                                                                 make_file("big", d, t)), 413,
     "max_upload_mb"),
    ("image: corrupt", lambda s, d, t: upload_image(s, "new_a", make_file("corrupt", d, t)), 400, "read"),
    ("image: empty", lambda s, d, t: upload_image(s, "new_b", make_file("empty", d, t)), 400, "image"),
    ("image: 2-D", lambda s, d, t: upload_image(s, "new_c", make_file("2d", d, t)), 400, "3-D"),
    ("image: 4-D", lambda s, d, t: upload_image(s, "new_d", make_file("4d", d, t)), 400, "3-D"),
    ("image: NaN-filled", lambda s, d, t: upload_image(s, "new_e", make_file("nan_image", d, t)), 400, "NaN"),
    ("image: absurd header dimensions", lambda s, d, t: upload_image(s, "new_f", make_file("absurd", d, t)), 400,
     "voxels"),
    ("image: broken NRRD header", lambda s, d, t: upload_image(s, "new_g", make_file("text_nrrd", d, t)), 400,
     "read"),
    ("image: id with ..", lambda s, d, t: upload_image(s, "..", make_file("label", d, t)), 400, "id"),
    ("image: id with a path separator", lambda s, d, t: upload_image(s, "a\\b", make_file("label", d, t)), 400,
     "separator"),
    ("image: over the upload limit", lambda s, d, t: upload_image(s, "new_h", make_file("big", d, t)), 413,
     "max_upload_mb"),
    ("infer: unknown model", lambda s, d, t: s.post("/infer/nope", params={"image": "phantom_000"}), 404, "nope"),
    ("infer: unknown image", lambda s, d, t: s.post("/infer/foundation", params={"image": "nope"}), 404,
     "datastore"),
    ("infer: path traversal", lambda s, d, t: s.post("/infer/foundation", params={"image": "../../etc/passwd"}),
     404, "datastore"),
    ("infer: arena before any training", lambda s, d, t: s.post("/infer/arena", params={"image": "phantom_000"}),
     409, "adapted"),
    ("infer: unknown version", lambda s, d, t: s.post("/infer/arena", params={"image": "phantom_000"},
                                                      data={"params": json.dumps({"version": "v999"})}), 404,
     "v999"),
    ("train: unknown model", lambda s, d, t: s.post("/train/nope", json={}), 404, "nope"),
    ("train: no labelled scans", lambda s, d, t: s.post("/train/arena", json={"max_epochs": 1}), 400, "label"),
    ("train: max_epochs not a number", lambda s, d, t: s.post("/train/arena", json={"max_epochs": "abc"}), 400,
     "max_epochs"),
    ("train: max_epochs negative", lambda s, d, t: s.post("/train/arena", json={"max_epochs": -1}), 400,
     "max_epochs"),
    ("train: rank 0", lambda s, d, t: s.post("/train/arena", json={"rank": 0}), 400, "rank"),
    ("train: lr out of range", lambda s, d, t: s.post("/train/arena", json={"lr": -1}), 400, "lr"),
    ("train: val_split over 1", lambda s, d, t: s.post("/train/arena", json={"val_split": 1.5}), 400, "val_split"),
    ("train: unknown method", lambda s, d, t: s.post("/train/arena", json={"method": "magic"}), 400, "method"),
    ("train: unknown option", lambda s, d, t: s.post("/train/arena", json={"epochz": 3}), 400, "epochz"),
    ("batch infer: unknown model", lambda s, d, t: s.post("/batch/infer/nope", json={}), 404, "nope"),
    ("batch infer: arena before training", lambda s, d, t: s.post("/batch/infer/arena", json={}), 409, "arena"),
    ("strategy: unknown", lambda s, d, t: s.post("/activelearning/nope", json={}), 404, "nope"),
    ("download: image outside the datastore", lambda s, d, t: s.get("/datastore/image",
                                                                    params={"image": "../../../etc/passwd"}), 404,
     "not found"),
    ("download: label outside the datastore", lambda s, d, t: s.get("/datastore/label", params={
        "label": "../../../etc/passwd", "tag": "final"}), 404, "not found"),
]


@pytest.mark.slow
def test_bad_inputs_are_4xx_with_a_message_and_change_nothing(server, phantom_dir, tmp_path):
    assert len(BAD_INPUTS) >= 30
    before = snapshot(server.studies, server.model_dir)
    failures = []
    for what, request, status, word in BAD_INPUTS:
        response = request(server, phantom_dir, tmp_path)
        detail = response.text
        print(f"{what}: {response.status_code} {detail[:160]}")
        if response.status_code != status or word.lower() not in detail.lower():
            failures.append(f"{what}: {response.status_code} {detail[:300]}")
        assert server_alive(server.url), f"server down after {what}"
        after = snapshot(server.studies, server.model_dir)
        if after != before:
            failures.append(f"{what}: stored files changed: {set(after.items()) ^ set(before.items())}")
            before = after
    assert not failures, "\n".join(failures)


def _train_until_epoch(srv: Server, epoch: int, max_epochs: int = 200) -> None:
    """Start a long training run and return once its train_stats.json says it reached ``epoch``."""
    stats = srv.model_dir / "arena" / "train_stats.json"
    started = time.time()
    response = srv.post("/train/arena", json={"max_epochs": max_epochs, "num_samples": 1, "val_split": 0.0})
    assert response.status_code == 200, response.text
    deadline = started + TRAIN_TIMEOUT
    while time.time() < deadline:
        try:
            fresh = stats.stat().st_mtime >= started  # not the stats a killed run left behind
            if fresh and json.loads(stats.read_text()).get("epoch", 0) >= epoch:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    pytest.fail(f"training did not reach epoch {epoch}")


@pytest.mark.slow
def test_kills_during_training_lose_nothing_and_concurrent_infers_succeed(server, phantom_dir, tmp_path):
    for name in IMAGES[:3]:
        label, affine = truth(phantom_dir, name)
        file = _save((label == GALLBLADDER).astype(np.uint8), affine, tmp_path / f"{name}.nii.gz")
        assert upload_label(server, name, file, ORGAN).status_code == 200
    assert server.post("/train/arena", json={"max_epochs": 1, "num_samples": 1, "val_split": 0.0}).ok
    assert server.wait_training() == "DONE"
    arena = server.model_dir / "arena"
    assert os.readlink(arena / "latest") == "versions/v001"
    labels = snapshot(server.studies / "labels")
    good = snapshot(arena / "versions")

    # 20 infers at once while a training runs; a second train request meanwhile is refused with a reason
    _train_until_epoch(server, 1)
    started = time.time()
    with ThreadPoolExecutor(max_workers=20) as pool:
        # inference runs one request at a time beside the training: the last of 20 waits for the other 19
        answers = list(pool.map(lambda i: server.post(f"/infer/{('foundation', 'arena')[i % 2]}",
                                                      params={"image": IMAGES[3 + i % 2]}, timeout=900), range(20)))
    print(f"20 concurrent infers during training answered in {time.time() - started:.1f} s")
    assert [r.status_code for r in answers] == [200] * 20, [r.text[:200] for r in answers if not r.ok]
    second = server.post("/train/arena", json={"max_epochs": 1})
    assert second.status_code == 429 and "already running" in second.text.lower(), second.text

    # SIGKILL at different moments of a run, restarting each time: mid-run (the run above), just after it was
    # submitted (still loading data), and at epoch 3 of a fresh run
    for moment in ("mid-run", "at start", "epoch 3"):
        if moment == "mid-run":
            assert server.train_state() == "RUNNING"
        elif moment == "at start":
            assert server.post("/train/arena", json={"max_epochs": 200, "num_samples": 1, "val_split": 0.0}).ok
            time.sleep(0.5)
        else:
            _train_until_epoch(server, 3)
        server.kill()
        server.start()
        assert os.readlink(arena / "latest") == "versions/v001", moment
        assert not list((arena / "versions").glob(".stage-*")), f"{moment}: a half-written version is left"
        assert snapshot(arena / "versions") == good, moment
        assert snapshot(server.studies / "labels") == labels, moment
        result = server.post("/infer/arena", params={"image": IMAGES[4]})
        assert result.status_code == 200, f"{moment}: {result.text[:300]}"

    # and training works again after the last restart
    assert server.post("/train/arena", json={"max_epochs": 1, "num_samples": 1, "val_split": 0.0}).ok
    assert server.wait_training() == "DONE"
    assert os.readlink(arena / "latest") == "versions/v002"
