"""Starting and probing a MONAI Label server of arena-seg: a free port, liveness, phantom studies to serve.

Shared by ``arena-seg serve``, the app benchmark (:mod:`arena_seg.bench.app_train`) and the tests; nothing here
imports monailabel.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from arena_seg.errors import InputError

PHANTOM_MARKER = ".arena-seg-phantoms"  # in a studies folder whose images arena-seg wrote


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on now (for test and benchmark servers)."""
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def server_alive(url: str, timeout: float = 10) -> bool:
    """Whether a MONAI Label server answers GET /info/ at ``url``."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/info/", timeout=timeout) as r:
            return r.status == 200
    except OSError:
        return False


def study_volumes(folder: Path) -> list[Path]:
    """The CT volumes (.nii.gz, .nrrd, ...) directly in ``folder`` (none when it does not exist)."""
    from arena_seg.data.volumes import VOLUME_SUFFIXES

    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(VOLUME_SUFFIXES))


def write_phantom_studies(studies: Path, n: int, spacing: float, seed: int = 7) -> list[str]:
    """Write ``n`` phantom CT images into ``studies`` and their labels into ``<studies>-truth/``."""
    from arena_seg.data.phantoms import write_phantoms

    if n < 1 or spacing <= 0:
        raise InputError("--phantoms must be ≥ 1 and --phantom-spacing > 0")
    studies.mkdir(parents=True, exist_ok=True)
    truth = studies.with_name(studies.name + "-truth")
    with tempfile.TemporaryDirectory(dir=studies.parent) as tmp:
        names = write_phantoms(tmp, n=n, seed=seed, spacing=(spacing, spacing, spacing))
        for name in names:
            shutil.move(str(Path(tmp) / "images" / f"{name}.nii.gz"), studies / f"{name}.nii.gz")
        shutil.rmtree(truth, ignore_errors=True)
        shutil.move(str(Path(tmp) / "labels"), truth)
        shutil.move(str(Path(tmp) / "labels.json"), truth / "labels.json")
    (studies / PHANTOM_MARKER).write_text(f"phantoms written by arena-seg serve; truth labels in {truth}\n")
    return names


@contextlib.contextmanager
def running_app(out: Path, studies: Path, conf: dict[str, str], start_timeout: float = 180) -> Iterator[str]:
    """Start the arena-seg MONAI Label app on ``studies`` (``monailabel start_server``, its log in
    ``out/server.log``) with ``--conf`` ``conf``; yield its URL once it answers; stop it (its process group) at the
    end. For benchmarks that drive the app as Slicer does."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from arena_seg.resources import app_dir

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
           "MONAI_LABEL_TRACKING_ENABLED": "false"}
    cmd = [str(bin_dir / "monailabel"), "start_server", "--app", str(app_dir()), "--studies", str(studies.resolve()),
           "--host", "127.0.0.1", "--port", str(port)]
    for key, value in conf.items():
        cmd += ["--conf", key, value]
    with open(out / "server.log", "wb") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(cmd, cwd=out, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + start_timeout
        while not server_alive(url):
            if proc.poll() is not None or time.time() > deadline:
                raise SystemExit(f"server did not start; see {out / 'server.log'}")
            time.sleep(1)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
