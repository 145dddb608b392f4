"""The version store: ids, the atomic `latest` link, and failed or killed runs that never move it."""

from __future__ import annotations

import os

import pytest
from lib.errors import NoAdaptedModelError, UnknownVersionError
from lib.versions import VersionStore


def _run(store: VersionStore, fail: bool = False) -> str:
    with store.new_version() as (version, stage):
        (stage / "manifest.json").write_text('{"labels": {"gallbladder": 1}}')
        if fail:
            raise RuntimeError("training diverged")
    return version


def test_runs_become_versions_and_latest_follows(tmp_path):
    store = VersionStore(tmp_path / "arena")
    assert store.list() == [] and store.latest() is None
    with pytest.raises(NoAdaptedModelError, match="no adapted model yet"):
        store.resolve()
    assert _run(store) == "v001"
    assert _run(store) == "v002"
    assert store.list() == ["v001", "v002"]
    assert store.latest() == "v002"
    assert os.readlink(store.latest_link) == "versions/v002"  # relative: the folder can move
    assert store.resolve("latest")[0] == "v002" and store.resolve("v001")[0] == "v001"
    assert store.manifest("v001") == {"labels": {"gallbladder": 1}}
    assert not list(store.root.glob(".latest.*"))  # the temporary link was renamed over `latest`


def test_failed_run_leaves_latest_and_no_folder(tmp_path):
    store = VersionStore(tmp_path / "arena")
    _run(store)
    with pytest.raises(RuntimeError, match="diverged"):
        _run(store, fail=True)
    assert store.latest() == "v001" and store.list() == ["v001"]
    assert not list(store.versions_dir.glob(".stage-*"))
    assert _run(store) == "v002"  # the failed run's id is free again; nothing half-written is served


def test_killed_run_stage_is_ignored_then_removed(tmp_path):
    store = VersionStore(tmp_path / "arena")
    _run(store)
    (store.versions_dir / ".stage-v002").mkdir()  # what a SIGKILLed run leaves: its stage, owned by a dead pid
    (store.versions_dir / ".stage-v002" / ".owner").write_text("999999999")
    assert store.list() == ["v001"] and store.latest() == "v001"
    assert _run(store) == "v002"
    assert store.list() == ["v001", "v002"] and not list(store.versions_dir.glob(".stage-*"))


@pytest.mark.parametrize("ref", ["v009", "../v001", "latest/../v001", "x"])
def test_unknown_or_malformed_version_is_refused(tmp_path, ref):
    store = VersionStore(tmp_path / "arena")
    _run(store)
    with pytest.raises(UnknownVersionError, match="versions: v001"):
        store.resolve(ref)
