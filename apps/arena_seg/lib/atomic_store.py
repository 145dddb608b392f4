"""Datastore writes that survive a kill: stock ``LocalDatastore`` copies images and labels straight to their final
names and rewrites ``datastore_v2.json`` in place, so a server killed mid-write leaves half a file behind.

Here every file goes to ``NAME.<pid>.partial`` (no datastore extension matches it) and is renamed when complete;
what a killed process left is swept when the next datastore opens the folder.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from typing import Any

from fastapi import HTTPException
from filelock import FileLock
from monailabel.datastore.local import DataModel, ImageLabelModel

from arena_seg.files import PARTIAL, atomic_write, partial_name, write_json

logger = logging.getLogger(__name__)

def partial(path: str | os.PathLike) -> str:
    """A private name beside ``path`` to write under until complete (``NAME.<random>.<pid>.partial``: the pid
    tells a sweep whether its writer still runs; the server and its training subprocess share the folders)."""
    return str(partial_name(path))


def copy_atomic(src: str, dest: str) -> None:
    """Copy ``src`` to ``dest``: ``dest`` is the old file or the new one, never half of the new one, whenever the
    process dies (:func:`arena_seg.files.atomic_write`)."""
    atomic_write(dest, lambda tmp: shutil.copyfile(src, tmp))


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` runs (a writer that may still be using its partial file or stage folder)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _writer_alive(name: str) -> bool:
    pid = name[: -len(PARTIAL)].rsplit(".", 1)[-1]
    return pid.isdigit() and pid_alive(int(pid))


def sweep_partials(root: str | os.PathLike) -> None:
    """Remove what a killed process left half-written (``*.partial`` files and folders) under ``root``."""
    for dirpath, dirs, files in os.walk(root):
        for name in [*files, *dirs]:
            if name.endswith(PARTIAL) and not _writer_alive(name):
                logger.warning("removing %s, left half-written by a process that was stopped", name)
                path = os.path.join(dirpath, name)
                if os.path.isdir(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.unlink(path)
        dirs[:] = [d for d in dirs if not d.endswith(PARTIAL)]


class AtomicStore:
    """Mixin for a ``LocalDatastore`` (or a subclass): atomic image, label and index writes."""

    def _store_image(self, image_id: str, image_filename: str, image_info: dict[str, Any]) -> str:
        """Stock add_image with an atomic copy; the image's labels, if it had any, are kept."""
        _, ext = self._to_id(os.path.basename(image_filename))
        name = self._filename(image_id, ext)
        with FileLock(self._lock_file):
            copy_atomic(image_filename, os.path.join(self._datastore.image_path(), name))
            info = {**(image_info or {}), "ts": int(time.time()), "name": name}
            old = self._datastore.objects.get(image_id)
            self._datastore.objects[image_id] = ImageLabelModel(image=DataModel(info=info, ext=ext),
                                                                labels=old.labels if old else {})
            self._update_datastore_file(lock=False)
        return image_id

    def _store_label(self, image_id: str, label_filename: str, label_tag: str, label_info: dict[str, Any]) -> str:
        """Stock save_label with an atomic copy (a killed server leaves the previous label, not half a new one)."""
        obj = self._datastore.objects.get(image_id)
        if not obj:
            raise HTTPException(status_code=404, detail=f"image {image_id!r} is not in the datastore")
        _, ext = self._to_id(os.path.basename(label_filename))
        label_path = self._datastore.label_path(label_tag)
        name = self._filename(image_id, ext)
        with FileLock(self._lock_file):
            os.makedirs(label_path, exist_ok=True)
            copy_atomic(label_filename, os.path.join(label_path, name))
            obj.labels[label_tag] = DataModel(info={**(label_info or {}), "ts": int(time.time()), "name": name},
                                              ext=ext)
            self._update_datastore_file(lock=False)
        return image_id

    def _update_datastore_file(self, lock: bool = True) -> None:
        """Stock writes datastore_v2.json in place (a kill mid-write corrupts it); this writes it atomically."""
        def write() -> None:
            self._ignore_event_config = True
            write_json(self._datastore_config_path, self._datastore.model_dump(exclude={"base_path"}), default=str)
            self._config_ts = os.stat(self._datastore_config_path).st_mtime

        if lock:
            with FileLock(self._lock_file):
                write()
        else:
            write()
