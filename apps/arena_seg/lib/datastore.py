"""A local datastore that checks every final label against its image before anything is written.

Stock ``LocalDatastore.save_label`` copies the uploaded file into ``labels/final`` first and only then calls the
app's ``on_save_label``; a wrong label would already be stored. Here the label is read, fitted to the image's grid,
mapped to the configured organs (:mod:`lib.labels`) and only then written, as a normalised uint8 NIfTI.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import HTTPException
from filelock import FileLock
from monailabel.datastore.local import DataModel, ImageLabelModel, LocalDatastore
from monailabel.interfaces.datastore import DefaultLabelTag

from arena_seg.data.volumes import read_volume
from arena_seg.files import write_nifti_mask
from lib.errors import http_errors
from lib.labels import normalise_label, read_label

logger = logging.getLogger(__name__)

SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # no separators, no "..", nothing hidden
PARTIAL = ".partial"  # suffix of a file being written: no datastore extension matches it


def copy_atomic(src: str, dest: str) -> None:
    """Copy ``src`` to ``dest`` through ``dest.partial`` and one rename: ``dest`` is the old file or the new one,
    never half of the new one, whenever the process dies."""
    tmp = dest + PARTIAL
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def validated_label(image_path: str, label_filename: str, organs: tuple[str, ...], label_info: Any
                    ) -> tuple[np.ndarray, np.ndarray, dict]:
    """(uint8 ids 1..n of ``organs`` on the image's grid (X, Y, Z), the image's affine, what was found); a label
    that does not fit raises HTTPException 4xx naming the problem."""
    with http_errors():
        image = read_volume(image_path)
        array, found = normalise_label(image, read_label(label_filename), list(organs), label_info)
    return array, image.affine, found


@contextmanager
def temporary_nifti(array: np.ndarray, affine: np.ndarray) -> Iterator[str]:
    """A uint8 NIfTI of ``array`` in a temporary file, removed afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix="arena-label-"))
    try:
        yield str(write_nifti_mask(tmp / "label.nii.gz", array, affine))
    finally:
        (tmp / "label.nii.gz").unlink(missing_ok=True)
        tmp.rmdir()


class OrganLabels:
    """What the trainer asks of a datastore: final labels stored as ids 1..n of ``organs``."""

    organs: tuple[str, ...]

    def training_items(self) -> tuple[list[dict], list[str]]:
        """Final labels usable with the current organs: [{"id", "image", "label"}], and the ids skipped (labels
        stored while the server learnt other organs). Labels put on disk by hand carry ids 1..n by contract."""
        wanted = {o: i + 1 for i, o in enumerate(self.organs)}
        items, skipped = [], []
        for image_id in sorted(self.get_labeled_images()):
            info = self.get_label_info(image_id, DefaultLabelTag.FINAL.value) or {}
            stored = info.get("arena_labels")
            if stored is not None and stored != wanted:
                skipped.append(image_id)
                continue
            image = self.get_image_uri(image_id)
            label = self.get_label_uri(image_id, DefaultLabelTag.FINAL.value)
            if image and label and os.path.isfile(image) and os.path.isfile(label):
                items.append({"id": image_id, "image": image, "label": label})
        return items, skipped


class ArenaDatastore(OrganLabels, LocalDatastore):
    """LocalDatastore whose final labels are validated and stored as ids 1..n of ``organs``."""

    def __init__(self, datastore_path: str, *args: Any, organs: tuple[str, ...] = (), **kwargs: Any) -> None:
        self.organs = tuple(organs)
        _sweep_partials(datastore_path)
        super().__init__(datastore_path, *args, **kwargs)

    def add_image(self, image_id: str, image_filename: str, image_info: dict[str, Any]) -> str:
        """Store an uploaded image once it reads as a sane 3-D volume under a plain id; 400 otherwise."""
        derived, ext = self._to_id(os.path.basename(image_filename))
        image_id = image_id or derived
        if not SAFE_ID.fullmatch(image_id or "") or ".." in image_id:
            raise HTTPException(status_code=400, detail=f"image id {image_id!r}: use letters, digits, '.', '_' and "
                                                        "'-' only (no path separators or '..')")
        with http_errors():
            read_volume(image_filename)
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
            tmp = self._datastore_config_path + PARTIAL
            with open(tmp, "w") as f:
                f.write(json.dumps(self._datastore.model_dump(exclude={"base_path"}), indent=2, default=str))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self._datastore_config_path)
            self._config_ts = os.stat(self._datastore_config_path).st_mtime

        if lock:
            with FileLock(self._lock_file):
                write()
        else:
            write()

    def save_label(self, image_id: str, label_filename: str, label_tag: str, label_info: dict[str, Any]) -> str:
        """Validate, normalise and store a label; a bad one raises HTTPException 4xx and leaves no file behind."""
        if label_tag != DefaultLabelTag.FINAL.value:  # inference results (tag "original") are stored as they are
            self._require_image(image_id)
            return self._store_label(image_id, label_filename, label_tag, label_info)
        image_path = self._require_image(image_id)
        info = dict(label_info or {})
        array, affine, found = validated_label(image_path, label_filename, self.organs, info.get("label_info"))
        info.update(found)
        with temporary_nifti(array, affine) as tmp:
            self._drop_other_final(image_id)
            label_id = self._store_label(image_id, tmp, label_tag, info)
        logger.info("saved final label of %s: %s voxels (%s)", image_id, found["arena_voxels"], found["arena_source"])
        return label_id

    def _require_image(self, image_id: str) -> str:
        path = self.get_image_uri(image_id)
        if not path or not os.path.isfile(path):
            raise HTTPException(status_code=404, detail=f"image {image_id!r} is not in the datastore; upload it "
                                                        "first or give an id from /datastore")
        return path

    def _drop_other_final(self, image_id: str) -> None:
        """Remove a final label of another extension (e.g. one put there by hand), so one label file remains."""
        current = self.get_label_uri(image_id, DefaultLabelTag.FINAL.value)
        if current and not current.endswith(".nii.gz") and os.path.isfile(current):
            os.unlink(current)


def _sweep_partials(root: str) -> None:
    """Remove files a killed server left half-written (``*.partial``) under the studies folder."""
    for dirpath, _, files in os.walk(root):
        for name in files:
            if name.endswith(PARTIAL):
                logger.warning("removing %s, left half-written by a server that was stopped", name)
                os.unlink(os.path.join(dirpath, name))
