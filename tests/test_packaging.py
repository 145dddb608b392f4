"""`pip install .` ships the MONAI Label app and the embedded model: a wheel built from this tree, installed into a
fresh venv (dependencies from this one), can find both and start `arena-seg serve --help`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import arena_seg

ROOT = Path(arena_seg.__file__).resolve().parents[2]
SHIPPED = ["pyproject.toml", "setup.py", "README.md", "src", "apps/arena_seg", "sample-data/default"]

pytestmark = pytest.mark.skipif(not (ROOT / "setup.py").is_file(), reason="not a source checkout")


def _copy_tree(dest: Path) -> None:
    """What a checkout holds for the build, without runtime folders and caches (the build writes beside it)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "model", "logs", "bin", "build")
    for name in SHIPPED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        else:
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


@pytest.mark.slow
def test_wheel_ships_the_app_and_the_sample_model(tmp_path):
    _copy_tree(tmp_path / "src-tree")
    run = dict(capture_output=True, text=True, timeout=600)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(tmp_path / "src-tree"),
                            "-w", str(tmp_path / "wheel")], **run)
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = (tmp_path / "wheel").glob("arena_seg-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    app = ROOT / "apps" / "arena_seg"
    app_files = {f"arena_seg/_app/{p.relative_to(app)}" for p in app.rglob("*.py")
                 if not {"model", "logs", "bin", "__pycache__"} & set(p.relative_to(app).parts)}
    assert app_files <= names  # every module of the app, its subpackages included
    assert {f"arena_seg/_sample/default/{n}" for n in ("network.json", "network.safetensors", "README.md")} <= names

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, **run)
    py = venv / "bin" / "python"
    purelib = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  check=True, **run).stdout.strip())
    # dependencies from this environment, after the venv's own site-packages (so the wheel's arena_seg wins)
    (purelib / "zz_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q",
                              str(wheel)], **run)
    assert install.returncode == 0, install.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ARENA_SEG_DEFAULT_MODEL")}
    probe = ("import arena_seg, arena_seg.resources as r, arena_seg.models.registry as m; "
             "print(arena_seg.__file__); print(r.app_dir()); print(m.default_model_dir())")
    where = subprocess.run([str(py), "-c", probe], cwd=tmp_path, env=env, check=True, **run).stdout.split()
    assert all(line.startswith(str(purelib / "arena_seg")) for line in where), where
    assert (Path(where[1]) / "main.py").is_file() and (Path(where[2]) / "network.safetensors").is_file()
    serve = subprocess.run([str(venv / "bin" / "arena-seg"), "serve", "--help"], cwd=tmp_path, env=env, **run)
    assert serve.returncode == 0 and "--app" in serve.stdout, serve.stdout + serve.stderr
