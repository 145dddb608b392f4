"""`arena-seg serve`: phantom studies when there are none, then monailabel start_server with the venv first on PATH."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from app_support import APP_DIR, VENV_BIN

from arena_seg.cli import main


@pytest.fixture()
def execs(monkeypatch):
    calls = []
    monkeypatch.setattr(os, "execve", lambda path, argv, env: calls.append((path, argv, env)))
    return calls


def test_serve_writes_phantoms_then_starts_monailabel(tmp_path, execs, capsys):
    studies = tmp_path / "studies"
    assert main(["serve", "--studies", str(studies), "--port", "8123", "--phantoms", "1", "--phantom-spacing", "10",
                 "--conf", "device", "cpu"]) == 0
    assert [p.name for p in studies.glob("*.nii.gz")] == ["phantom_000.nii.gz"]
    assert (tmp_path / "studies-truth" / "phantom_000.nii.gz").is_file()  # truth kept beside, not in the studies
    path, argv, env = execs[0]
    assert Path(path).name == "monailabel" and argv[1] == "start_server"
    assert argv[argv.index("--app") + 1] == str(APP_DIR) and argv[argv.index("--port") + 1] == "8123"
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert "--conf device cpu" in " ".join(argv) and "--conf labels gallbladder" in " ".join(argv)
    assert env["PATH"].split(os.pathsep)[0] == str(VENV_BIN)
    assert env["MONAI_LABEL_TRACKING_ENABLED"] == "false"
    assert "set the server to http://127.0.0.1:8123" in capsys.readouterr().out


def test_serve_uses_existing_studies_and_given_labels(tmp_path, phantom_dir, execs):
    studies = tmp_path / "mine"
    studies.mkdir()
    shutil.copy(phantom_dir / "images" / "phantom_000.nii.gz", studies)
    assert main(["serve", "--studies", str(studies), "--conf", "labels", "pancreas"]) == 0
    argv = " ".join(execs[0][1])
    assert "--conf labels pancreas" in argv and "gallbladder" not in argv
    assert sorted(p.name for p in studies.iterdir()) == ["phantom_000.nii.gz"]


def test_serve_refuses_a_folder_without_the_app(tmp_path, phantom_dir, execs, capsys):
    studies = tmp_path / "s"
    studies.mkdir()
    shutil.copy(phantom_dir / "images" / "phantom_000.nii.gz", studies)
    assert main(["serve", "--studies", str(studies), "--app", str(tmp_path)]) == 2
    assert "no main.py" in capsys.readouterr().err and not execs
