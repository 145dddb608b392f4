"""A local datastore that checks every final label against its image before anything is written.

Stock ``LocalDatastore.save_label`` copies the uploaded file into ``labels/final`` first and only then calls the
app's ``on_save_label``; a wrong label would already be stored. Here the label is read, fitted to the image's grid,
mapped to the organs by name (:mod:`lib.labels`, ids from the organ registry :mod:`lib.organs`) and only then
written, as a normalised uint8 NIfTI.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterator
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
from lib.names import TAGS, check_new_id, check_tag, inside
from lib.organs import OrganRegistry
from lib.uploads import UPLOAD_SUFFIXES, check_label_header, check_upload, header_shape

logger = logging.getLogger(__name__)

MIN_SPACING_MM, MAX_SPACING_MM = 0.01, 100.0  # outside: a corrupt header, not a CT


def validated_label(image_path: str, label_filename: str, organs: OrganRegistry, label_info: Any
                    ) -> tuple[np.ndarray, np.ndarray, dict]:
    """(uint8 organ ids on the image's grid (X, Y, Z), the image's affine, what was found); a label that does not
    fit raises HTTPException 4xx naming the problem."""
    with http_errors():
        image = read_volume(image_path)
        check_label_header(label_filename, image.shape)  # before its voxels are read: a small gzip can be huge
        array, found = normalise_label(image, read_label(label_filename), organs, label_info)
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
    """What the trainer asks of a datastore: final labels stored with the organ ids of ``registry``."""

    registry: OrganRegistry
    #: called with (image id, organs the label contains) after a final label is stored (the app's auto-training)
    label_listener: Callable[[str, list[str]], None] | None = None

    def stored_organs(self, image_id: str) -> dict[str, int] | None:
        """{organ: id} the final label of ``image_id`` contains (voxels > 0), None without a final label. Labels
        put on disk by hand carry the configured organs as ids 1..n by contract (counted as containing them)."""
        info = self.get_label_info(image_id, DefaultLabelTag.FINAL.value) or {}
        label = self.get_label_uri(image_id, DefaultLabelTag.FINAL.value)
        if not label or not os.path.isfile(label):
            return None
        voxels = info.get("arena_voxels") or {}
        return {o: v for o, v in self._label_ids(info).items() if voxels.get(o, 1) > 0}

    def label_organs(self) -> dict[str, list[str]]:
        """{organ: ids of the scans whose final label contains it}."""
        found: dict[str, list[str]] = {}
        for image_id in sorted(self.get_labeled_images()):
            for organ in self.stored_organs(image_id) or {}:
                found.setdefault(organ, []).append(image_id)
        return found

    def training_items(self, organs: dict[str, int]) -> tuple[list[dict], list[str]]:
        """Final labels that name one of ``organs`` ({organ: id}) under that id: [{"id", "image", "label"}], and the
        ids skipped (labels that store one of them under another id: saved by a server with other organs)."""
        items, skipped = [], []
        for image_id in sorted(self.get_labeled_images()):
            info = self.get_label_info(image_id, DefaultLabelTag.FINAL.value) or {}
            stored = self._label_ids(info)
            if any(o in stored and stored[o] != i for o, i in organs.items()):
                skipped.append(image_id)
                continue
            if not any(o in stored for o in organs):
                continue  # a label of other organs: unnamed is not absent
            image = self.get_image_uri(image_id)
            label = self.get_label_uri(image_id, DefaultLabelTag.FINAL.value)
            if image and label and os.path.isfile(image) and os.path.isfile(label):
                items.append({"id": image_id, "image": image, "label": label})
        return items, skipped

    def _label_ids(self, info: dict) -> dict[str, int]:
        """{organ: id} a final label's info records (hand-placed labels: the configured organs as 1..n)."""
        stored = info.get("arena_labels")
        if stored is None:
            return {o: i + 1 for i, o in enumerate(self.registry.configured)}
        return {str(o): int(v) for o, v in stored.items()}

    def _notify(self, image_id: str, found: dict) -> None:
        """Tell the listener which organs a stored final label contains; its failure never fails the save."""
        if self.label_listener is None:
            return
        organs = [o for o, n in found.get("arena_voxels", {}).items() if n > 0]
        try:
            self.label_listener(image_id, organs)
        except Exception:  # the label is stored: a listener's problem is logged, not answered
            logger.exception("label listener failed for %s", image_id)


TAGS_SET = frozenset(TAGS)


def _image_shape(path: str) -> tuple[int, ...]:
    """The image's voxel shape, from its header where the format allows."""
    if path.lower().endswith(UPLOAD_SUFFIXES):
        return header_shape(path, "image")
    return read_volume(path).shape


def _check_spacing(volume: Any) -> None:
    spacing = np.linalg.norm(volume.affine[:3, :3], axis=0)
    if not (np.all(spacing >= MIN_SPACING_MM) and np.all(spacing <= MAX_SPACING_MM)):
        raise HTTPException(status_code=400, detail=f"image voxel spacing {np.round(spacing, 4).tolist()} mm is "
                                                    f"outside {MIN_SPACING_MM:g}..{MAX_SPACING_MM:g} mm; is the "
                                                    "header corrupt?")


class ArenaDatastore(OrganLabels, AtomicStore, LocalDatastore):
    """LocalDatastore whose final labels are validated and stored with the organ ids of ``registry``."""

    def __init__(self, datastore_path: str, *args: Any, registry: OrganRegistry, **kwargs: Any) -> None:
        self.registry = registry
        sweep_partials(datastore_path)
        super().__init__(datastore_path, *args, **kwargs)

    def add_image(self, image_id: str, image_filename: str, image_info: dict[str, Any]) -> str:
        """Store an uploaded image once it reads as a sane 3-D volume under a plain id; 4xx otherwise. An image
        that has labels is replaced only by one on the same grid (its labels must still fit it)."""
        derived, _ = self._to_id(os.path.basename(image_filename))
        image_id = check_new_id(image_id or derived)
        with http_errors():
            volume = read_volume(check_upload(image_filename, "image"))
            _check_spacing(volume)
        old = self._datastore.objects.get(image_id)
        if old is not None and old.labels:
            self._check_same_grid(image_id, volume)
        return self._store_image(image_id, image_filename, image_info)

    def save_label(self, image_id: str, label_filename: str, label_tag: str, label_info: dict[str, Any]) -> str:
        """Validate, normalise and store a label; a bad one raises HTTPException 4xx and leaves no file behind."""
        label_tag = check_tag(label_tag)
        image_path = self._require_image(image_id)
        if label_tag != DefaultLabelTag.FINAL.value:  # inference results (tag "original") are stored as they are
            with http_errors():
                check_label_header(label_filename, _image_shape(image_path))
            return self._store_label(image_id, label_filename, label_tag, label_info)
        info = dict(label_info or {})
        array, affine, found = validated_label(image_path, label_filename, self.registry, info.get("label_info"))
        info.update(found)
        with temporary_nifti(array, affine) as tmp:
            self._drop_other_final(image_id)
            label_id = self._store_label(image_id, tmp, label_tag, info)
        logger.info("saved final label of %s: %s voxels (%s)", image_id, found["arena_voxels"], found["arena_source"])
        self._notify(image_id, found)
        return label_id

    # -- every path from an id or a tag: looked up, resolved, and confined to the studies folder ------------------
    def get_image_uri(self, image_id: str) -> str:
        if not isinstance(image_id, str) or image_id not in self._datastore.objects:
            return ""
        return self._confined(super().get_image_uri(image_id))

    def get_label_uri(self, label_id: str, label_tag: str) -> str:
        if not isinstance(label_id, str) or label_tag not in TAGS_SET or label_id not in self._datastore.objects:
            return ""
        return self._confined(super().get_label_uri(label_id, label_tag))

    def get_label_info(self, label_id: str, label_tag: str) -> dict[str, Any]:
        return super().get_label_info(label_id, check_tag(label_tag))

    def update_label_info(self, label_id: str, label_tag: str, info: dict[str, Any]) -> None:
        if not self.get_label_uri(label_id, check_tag(label_tag)):
            raise HTTPException(status_code=404, detail=f"image {label_id!r} has no {label_tag} label")
        return super().update_label_info(label_id, label_tag, info)

    def remove_label(self, label_id: str, label_tag: str) -> None:
        if not self.get_label_uri(label_id, check_tag(label_tag)):
            raise HTTPException(status_code=404, detail=f"image {label_id!r} has no {label_tag} label")
        super().remove_label(label_id, label_tag)

    def update_image_info(self, image_id: str, info: dict[str, Any]) -> None:
        self._require_image(image_id)
        return super().update_image_info(image_id, info)

    def remove_image(self, image_id: str) -> None:
        self._require_image(image_id)
        super().remove_image(image_id)

    def _list_files(self, path: str, patterns: Any) -> dict[str, str]:
        """Stock scan of the studies (and label) folders, without entries that lead outside the studies folder
        (symlinks): they are never listed, offered by Next Sample, trained on or served."""
        found = super()._list_files(path, patterns)
        kept = {k: f for k, f in found.items() if inside(os.path.join(path, f), self._datastore_path)}
        for name in sorted(set(found) - set(kept)):
            logger.warning("ignoring %s in %s: it leads outside the studies folder (a symlink?)", name, path)
        return kept

    def _confined(self, uri: str) -> str:
        """``uri`` when it lies inside the studies folder; "" (not found) for a symlink that leads outside."""
        if uri and not inside(uri, self._datastore_path):
            logger.warning("not serving %s: it lies outside the studies folder (a symlink?)", uri)
            return ""
        return uri

    def _check_same_grid(self, image_id: str, volume: Any) -> None:
        with http_errors():
            old = read_volume(self._require_image(image_id))
        if old.shape != volume.shape or not np.allclose(old.affine, volume.affine, atol=1e-3):
            raise HTTPException(status_code=409, detail=f"image {image_id!r} exists with labels on another grid "
                                                        f"({old.shape} vs {volume.shape}); its labels would no longer "
                                                        "fit: upload it under a new id, or delete the image first")

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

