"""Half-written files: written under NAME.<pid>.partial, renamed when complete, swept once their writer is gone."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import app_support  # noqa: F401  (puts the app's `lib` on sys.path)
from lib.atomic_store import copy_atomic, partial, sweep_partials


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_copy_replaces_the_destination_and_leaves_no_partial(tmp_path):
    src, dest = tmp_path / "src.nii.gz", tmp_path / "labels" / "a.nii.gz"
    dest.parent.mkdir()
    dest.write_bytes(b"old")
    src.write_bytes(b"new" * 1000)
    copy_atomic(str(src), str(dest))
    assert dest.read_bytes() == b"new" * 1000
    assert sorted(p.name for p in dest.parent.iterdir()) == ["a.nii.gz"]
    assert re.fullmatch(rf"{re.escape(str(dest))}\.[0-9a-f]{{8}}\.{os.getpid()}\.partial", partial(dest))


def test_sweep_removes_what_dead_writers_left_and_keeps_live_ones(tmp_path):
    dead = _dead_pid()
    (tmp_path / "labels" / "final").mkdir(parents=True)
    left_file = tmp_path / "labels" / "final" / f"a.nii.gz.{dead}.partial"
    left_dir = tmp_path / f"1.2.3.{dead}.partial"
    live = tmp_path / f"b.nii.gz.{os.getpid()}.partial"
    keep = tmp_path / "b.nii.gz"
    for f in (left_file, live, keep):
        f.write_bytes(b"x")
    left_dir.mkdir()
    (left_dir / "CT_0001.dcm").write_bytes(b"x")
    sweep_partials(tmp_path)
    assert not left_file.exists() and not left_dir.exists()
    assert live.exists() and keep.exists()
