"""Helpers of the MONAI Label app's tests (a unique module name: test files import it directly)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
APP_DIR = REPO / "apps" / "arena_seg"
VENV_BIN = Path(sys.executable).parent
if str(APP_DIR) not in sys.path:
    sys.path.insert(0, str(APP_DIR))  # MONAI Label imports the app's package as `lib`; so do the tests

COARSE_SPACING = (12.0, 12.0, 12.0)  # a 6 mm phantom is one (32, 32, 64) window at 12 mm: fast on a busy CPU
COARSE_PATCH = (32, 32, 64)
GALLBLADDER = 8  # id in the phantoms' truth labels


@pytest.fixture(scope="session")
def coarse_network_dir(make_tiny_network) -> Path:
    """The tiny default-architecture SwinUNETR at 12 mm (random weights)."""
    return make_tiny_network(spacing=COARSE_SPACING, patch=COARSE_PATCH)


@pytest.fixture()
def coarse_default(coarse_network_dir, monkeypatch) -> Path:
    monkeypatch.setenv("ARENA_SEG_DEFAULT_MODEL", str(coarse_network_dir))
    return coarse_network_dir


def truth(phantom_dir: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(label array, affine) of a phantom's truth label."""
    import nibabel as nib

    img = nib.load(str(phantom_dir / "labels" / f"{name}.nii.gz"))
    return np.asarray(img.dataobj), img.affine


def write_nifti(array: np.ndarray, affine: np.ndarray, path: Path) -> Path:
    import nibabel as nib

    nib.save(nib.Nifti1Image(array.astype(np.uint8), affine), str(path))
    return path


def write_seg_nrrd(layers: list[np.ndarray], affine: np.ndarray, segments: list[tuple[str, int, int]],
                   path: Path) -> Path:
    """A Slicer-style .seg.nrrd (LPS): 3-D for one layer, 4-D (list axis first) for several; segments are
    (name, layer, label value)."""
    import nrrd

    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine
    directions = lps[:3, :3].T.tolist()
    data = layers[0] if len(layers) == 1 else np.stack(layers, axis=0)
    header = {"space": "left-posterior-superior", "space origin": lps[:3, 3].tolist(),
              "space directions": directions if len(layers) == 1 else [[np.nan] * 3, *directions],
              "kinds": ["domain"] * 3 if len(layers) == 1 else ["list", "domain", "domain", "domain"]}
    for i, (name, layer, value) in enumerate(segments):
        header.update({f"Segment{i}_Name": name, f"Segment{i}_ID": f"Segment_{i}", f"Segment{i}_Layer": str(layer),
                       f"Segment{i}_LabelValue": str(value)})
    nrrd.write(str(path), data.astype(np.uint8), header)
    return path


def dice(a: np.ndarray, b: np.ndarray) -> float:
    denom = int(a.sum()) + int(b.sum())
    return 1.0 if denom == 0 else 2.0 * int((a & b).sum()) / denom


def app_class():
    """The app's class, loaded from main.py as MONAI Label loads it (without unloading the tests' `lib`)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("arena_seg_app_main", APP_DIR / "main.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ArenaSegApp


def save_version(store, network_dir: Path, organ: str) -> str:
    """A finished version holding a (random) network adapted to ``organ``, written through the version store."""
    import json

    from arena_seg.models.registry import build_network, load_network, save_network

    _, spec = load_network(network_dir)
    arch = {"class": spec.arch["class"], "kwargs": {**spec.arch["kwargs"], "out_channels": 2}}
    with store.new_version() as (version, stage):
        save_network(build_network(arch), stage / "network", name="default+arena", arch=arch, labels={organ: 1},
                     preprocessing=spec.preprocessing, targets=spec.targets, head=spec.head)
        (stage / "manifest.json").write_text(json.dumps({"labels": {organ: 1}, "version": version}))
    return version


@contextmanager
def running(cmd: list[str], log: Path, url_alive: Callable[[], bool], timeout: float, cwd: Path,
            env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    """Start ``cmd`` in its own process group (output to ``log``), wait until ``url_alive()`` (bounded), and stop
    the whole group afterwards: SIGTERM, then SIGKILL."""
    with open(log, "wb") as out:  # cwd without a .env: monailabel would read one silently
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + timeout
        while not url_alive():
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail(f"{Path(cmd[0]).name} did not start (exit {proc.poll()}):\n{log.read_text()[-3000:]}")
            time.sleep(1)
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


# ---- a real server, started with monailabel's own command -------------------------------------------------------
START_TIMEOUT = 180
TRAIN_TIMEOUT = 300


@dataclass
class Server:
    root: Path
    studies: Path
    model_dir: Path
    network: Path
    port: int
    upload_limit_mb: float = 2
    env: dict[str, str] | None = None
    proc: subprocess.Popen | None = None
    conf: dict[str, str] | None = None  # more --conf pairs (labels gallbladder unless given)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        conf = {"labels": "gallbladder", "model_dir": str(self.model_dir), "max_upload_mb": str(self.upload_limit_mb),
                **(self.conf or {})}
        cmd = [str(VENV_BIN / "monailabel"), "start_server", "--app", str(APP_DIR), "--studies", str(self.studies),
               "--host", "127.0.0.1", "--port", str(self.port)]
        for key, value in conf.items():
            cmd += ["--conf", key, value]
        log = open(self.root / "server.log", "ab")  # noqa: SIM115 - the server writes to it until stopped
        env = {**server_env(self.network), **(self.env or {})}
        self.proc = subprocess.Popen(cmd, cwd=self.root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        from arena_seg.commands.serve import server_alive

        deadline = time.time() + START_TIMEOUT
        while not server_alive(self.url):
            if self.proc.poll() is not None or time.time() > deadline:
                pytest.fail(f"server did not start:\n{(self.root / 'server.log').read_text()[-3000:]}")
            time.sleep(1)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the server and its training subprocesses (one process group) and wait for the server."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:  # a graceful stop still finishing queued inferences
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=60)
        time.sleep(0.5)  # the killed group's children go too

    def get(self, path: str, **kw) -> requests.Response:
        return requests.get(self.url + path, **{"timeout": 120, **kw})

    def post(self, path: str, **kw) -> requests.Response:
        return requests.post(self.url + path, **{"timeout": 120, **kw})

    def put(self, path: str, **kw) -> requests.Response:
        return requests.put(self.url + path, **{"timeout": 120, **kw})

    def train_state(self) -> str:
        body = self.get("/train/", params={"check_if_running": "false"}).json()
        return body.get("status", "") if isinstance(body, dict) else ""

    def wait_training(self) -> str:
        deadline = time.time() + TRAIN_TIMEOUT
        while time.time() < deadline:
            state = self.train_state()
            if state not in ("SUBMITTED", "RUNNING"):
                return state
            time.sleep(1)
        pytest.fail("training did not finish")


def snapshot(*folders: Path) -> dict[str, str]:
    """{relative path: sha1} of every file under the folders (logs and MONAI Label's lock file left out)."""
    out = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.suffix not in (".lock", ".log") and "tensorboard" not in path.parts:
                out[str(path.relative_to(folder.parent))] = hashlib.sha1(path.read_bytes()).hexdigest()
    return out



def server_env(default_model: Path) -> dict[str, str]:
    """The environment the tests start MONAI Label with: this venv first on PATH, the given default model."""
    return {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "ARENA_SEG_DEFAULT_MODEL": str(default_model), "MONAI_LABEL_TRACKING_ENABLED": "false"}
