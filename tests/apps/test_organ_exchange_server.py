"""Sharing a learned organ between servers, through the real servers, monailabel's client and the real CLI: server
1 learns an organ (Train through the REST API), `arena-seg adapters export` takes it out of server 1's library,
`arena-seg adapters import` puts it into the library of server 2 (running, other studies, same foundation), and
server 2 serves it from its next request (no restart): /info lists it and one infer `arena` returns the organ's
voxels on the id server 2's library gave it, the same voxels as server 1's answer. An adapter learned by a server
on another foundation network is refused with one line, and server 2's library stays byte-identical.

The networks are tiny, random and trained for a few epochs: these tests check the exchange, not the Dice.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from app_support import GALLBLADDER, VENV_BIN, Server, dice, truth, write_nifti
from monailabel.client import MONAILabelClient

from arena_seg.commands.serve import free_port
from arena_seg.data.volumes import read_volume

pytestmark = pytest.mark.slow  # three servers and two training runs
TRAIN = {"organs": "gallbladder", "max_epochs": 3, "num_samples": 1, "rank": 4, "val_split": 0}
TIMEOUT = 300
INFER = {"result_extension": ".nrrd", "result_dtype": "uint8"}


@pytest.fixture(scope="module")
def foreign_network_dir(coarse_network_dir, tmp_path_factory) -> Path:
    """A network like the coarse one (architecture, labels, grid) with other weights: another foundation."""
    from arena_seg.models.registry import load_network, save_network

    model, spec = load_network(coarse_network_dir)
    torch.manual_seed(1)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.01 * torch.randn_like(param))
    out = tmp_path_factory.mktemp("foreign") / "network"
    save_network(model, out, name="default", arch=spec.arch, labels=spec.labels, preprocessing=spec.preprocessing,
                 targets=spec.targets, head=spec.head)
    return out


def _start(root: Path, images: list[Path], network: Path, labels: str) -> tuple[Server, MONAILabelClient]:
    studies = root / "studies"
    studies.mkdir(parents=True)
    for image in images:
        shutil.copy(image, studies)
    srv = Server(root, studies, root / "model", network, free_port(), conf={"labels": labels, "epochs": "1"})
    srv.start()
    return srv, MONAILabelClient(srv.url, tmpdir=str(root / "client"))


def _learn_gallbladder(srv: Server, c: MONAILabelClient, phantom_dir: Path, images: list[str]) -> None:
    """Save the phantoms' gallbladder as Slicer would (value 1, named), press Train, wait until it is done."""
    for image in images:
        label, affine = truth(phantom_dir, image)
        path = write_nifti(label == GALLBLADDER, affine, srv.root / f"{image}-gallbladder.nii.gz")
        c.save_label(image, str(path), params={"label_info": [{"name": "gallbladder", "idx": 1}]})
    c.train_start("arena", TRAIN)
    deadline = time.time() + TIMEOUT
    while c.train_status().get("status") in ("SUBMITTED", "RUNNING"):
        if time.time() > deadline:
            pytest.fail(f"training did not finish in {TIMEOUT} s")
        time.sleep(1)
    assert c.train_status().get("status") == "DONE", (srv.root / "server.log").read_text()[-3000:]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(VENV_BIN / "arena-seg"), "adapters", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"})


def _tree(folder: Path) -> dict[str, str]:
    """Every entry under ``folder``: files by sha1, links by target, folders as such (locks left out)."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_dir():
            out[rel] = "dir"
        elif path.suffix != ".lock":
            out[rel] = hashlib.sha1(path.read_bytes()).hexdigest()
    return out


def _one_error_line(stderr: str) -> bool:
    """The refusal: one line, naming the reason."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("arena-seg adapters: error: adapter "), stderr
    assert "was trained on another foundation network" in lines[0], stderr
    return True


def _organ_mask(c: MONAILabelClient, image: str, organ: str) -> tuple[np.ndarray, dict]:
    result, params = c.infer("arena", image, INFER)
    return read_volume(result, "label").array == params["label_names"][organ], params


def test_an_exported_organ_is_served_by_a_second_server_and_another_foundations_is_refused(
        tmp_path, phantom_dir, coarse_network_dir, foreign_network_dir):
    images = sorted((phantom_dir / "images").glob("*.nii.gz"))
    one, c1 = _start(tmp_path / "one", images[:5], coarse_network_dir, "gallbladder")
    try:
        _learn_gallbladder(one, c1, phantom_dir, ["phantom_000", "phantom_001"])
        mask1, params1 = _organ_mask(c1, "phantom_004", "gallbladder")
        assert params1["versions"] == {"gallbladder": "v001"}
        exported = _cli("export", "--library", str(one.model_dir / "arena"), "--organ", "gallbladder",
                        "--out", str(tmp_path / "gallbladder"))
        assert exported.returncode == 0, exported.stderr
    finally:
        one.kill(signal.SIGTERM)
    assert mask1.sum() > 0  # the organ is there to compare

    # a server on another foundation network learns the same organ and exports it
    three, c3 = _start(tmp_path / "three", images[:2], foreign_network_dir, "gallbladder")
    try:
        _learn_gallbladder(three, c3, phantom_dir, ["phantom_000"])
        foreign = _cli("export", "--library", str(three.model_dir / "arena"), "--organ", "gallbladder",
                       "--out", str(tmp_path / "foreign"))
        assert foreign.returncode == 0, foreign.stderr
    finally:
        three.kill(signal.SIGTERM)

    # server 2: other studies, another configured organ (so the imported one gets another id), same foundation
    two, c2 = _start(tmp_path / "two", images[4:], coarse_network_dir, "pancreas")
    library = two.model_dir / "arena"
    try:
        pid = two.proc.pid
        assert "organ_library" not in c2.info()["models"]["arena"]
        with pytest.raises(Exception, match="409"):  # nothing learned yet
            c2.infer("arena", "phantom_004", INFER)

        # a library without an adapter records no foundation: --foundation names the served one, so even the first
        # import is checked; the other foundation's adapter is refused in one line and nothing is written
        empty = _tree(library)
        refused = _cli("import", "--library", str(library), "--from", str(tmp_path / "foreign"),
                       "--foundation", str(coarse_network_dir))
        assert refused.returncode == 2 and refused.stdout == "" and _tree(library) == empty
        assert _one_error_line(refused.stderr)

        imported = _cli("import", "--library", str(library), "--from", str(tmp_path / "gallbladder"),
                        "--foundation", str(coarse_network_dir))
        assert imported.returncode == 0, imported.stderr
        assert (library / "latest").resolve() == (library / "versions" / "v001").resolve()
        assert imported.stdout.strip() == f"imported gallbladder as v001 into {library}"

        # served from the next request, by the same process: no restart, no reload call
        info = c2.info()["models"]["arena"]
        foundation = c2.info()["models"]["foundation"]["labels"]
        top = max(foundation.values())
        assert info["labels"] == {**foundation, "pancreas": top + 1, "gallbladder": top + 2}
        entries = {e["organ"]: e for e in info["organ_library"]}
        assert {o: (e["id"], e["version"], e["shots"]) for o, e in entries.items()} == {"gallbladder": (2, "v001", 2)}
        mask2, params2 = _organ_mask(c2, "phantom_004", "gallbladder")
        assert params2["versions"] == {"gallbladder": "v001"}
        assert params1["label_names"]["gallbladder"] == top + 1 and params2["label_names"]["gallbladder"] == top + 2
        assert mask2.shape == mask1.shape and dice(mask1, mask2) >= 0.99
        assert two.proc.poll() is None and two.proc.pid == pid

        # the other foundation's adapter: refused in one line, server 2's library byte-identical
        before = _tree(library)
        refused = _cli("import", "--library", str(library), "--from", str(tmp_path / "foreign"))
        assert refused.returncode == 2 and refused.stdout == ""
        assert _one_error_line(refused.stderr)
        assert _tree(library) == before
        assert {e["organ"]: e["version"] for e in c2.info()["models"]["arena"]["organ_library"]} == {
            "gallbladder": "v001"}
        _, params = c2.infer("arena", "phantom_004", INFER)
        assert params["versions"] == {"gallbladder": "v001"}
    finally:
        two.kill(signal.SIGTERM)
