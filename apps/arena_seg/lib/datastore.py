"""A local datastore that checks every final label against its image before anything is written.

Stock ``LocalDatastore.save_label`` copies the uploaded file into ``labels/final`` first and only then calls the
app's ``on_save_label``; a wrong label would already be stored. Here the label is read, fitted to the image's grid,
mapped to the configured organs (:mod:`lib.labels`) and only then written, as a normalised uint8 NIfTI.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import HTTPException
from monailabel.datastore.local import LocalDatastore
from monailabel.interfaces.datastore import DefaultLabelTag

from arena_seg.data.volumes import read_volume
from arena_seg.files import write_nifti_mask
from lib.atomic_store import AtomicStore, sweep_partials
from lib.errors import http_errors
from lib.labels import normalise_label, read_label

logger = logging.getLogger(__name__)

SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # no separators, no "..", nothing hidden
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


class ArenaDatastore(OrganLabels, AtomicStore, LocalDatastore):
    """LocalDatastore whose final labels are validated and stored as ids 1..n of ``organs``."""

    def __init__(self, datastore_path: str, *args: Any, organs: tuple[str, ...] = (), **kwargs: Any) -> None:
        self.organs = tuple(organs)
        sweep_partials(datastore_path)
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
        return self._store_image(image_id, image_filename, image_info)

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

