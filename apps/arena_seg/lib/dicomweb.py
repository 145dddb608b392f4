"""A DICOMweb datastore (a PACS such as Orthanc) whose labels are checked like local ones and stored back as DICOM
SEG written by highdicom.

Stock ``DICOMWebDatastore`` downloads dcmqi from GitHub when the server starts and converts with it, writes a
download straight into its cache (an interrupted one then looks complete), caches the list of labelled series for
two hours (a label just saved cannot be trained on) and takes whichever SEG of a series comes first. Here a series
is read with arena-seg's DICOM reader (its real geometry; the cached NIfTI is on the series' own voxel grid, so a
label drawn on it maps to the DICOM frames one to one), downloads land in a temporary folder renamed when complete,
the label list is read from the PACS on every request, and the newest SEG of a series wins.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from dicomweb_client import DICOMwebClient
from fastapi import HTTPException
from monailabel.config import settings
from monailabel.datastore.dicom import DICOMwebClientX, DICOMWebDatastore
from monailabel.datastore.local import LocalDatastore
from monailabel.interfaces.datastore import DefaultLabelTag

from arena_seg.data.dicom_read import SeriesError, read_dicom_series
from arena_seg.data.dicom_seg import build_segmentation, read_segmentation, seg_left_out_reason
from arena_seg.data.volumes import read_volume
from arena_seg.files import write_nifti, write_nifti_mask
from lib.atomic_store import AtomicStore, partial, sweep_partials
from lib.conf import norm_name
from lib.datastore import OrganLabels, temporary_nifti, validated_label
from lib.errors import http_errors
from lib.names import TAGS, check_tag
from lib.organs import OrganRegistry
from lib.uploads import check_label_header

logger = logging.getLogger(__name__)

_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
_FINAL = DefaultLabelTag.FINAL.value
LOCAL_ONLY = "local cache only (no DICOM SEG)"  # a label whose series a SEG cannot reference
LIST_TTL = 30.0  # s a PACS listing is reused (stock: 2 hours, so new series stayed invisible that long)


def _write_ct(path: Path, series) -> Path:
    """The series' HU volume as a NIfTI on its own voxel grid (X, Y, Z) = (column, row, slice)."""
    return write_nifti(path, series.array, series.affine)


def _tag(meta: dict, tag: str) -> str:
    value = meta.get(tag, {}).get("Value") or [""]
    return str(value[0])


class ArenaDicomWebDatastore(OrganLabels, AtomicStore, DICOMWebDatastore):
    """Images are the CT series of a DICOMweb server; final labels are DICOM SEGs there, cached as NIfTI."""

    def __init__(self, client: DICOMwebClient, registry: OrganRegistry, search_filter: dict[str, Any],
                 cache_path: str | None = None) -> None:
        self.registry = registry
        self._synced: set[str] = set()  # image series whose newest SEG has been looked up
        self._listed: tuple[float, list[str]] = (-LIST_TTL, [])
        super().__init__(client, search_filter, cache_path, fetch_by_frame=False, convert_to_nifti=True)
        sweep_partials(self._datastore_path)

    # ---- images -------------------------------------------------------------------------------------------------
    def list_images(self) -> list[str]:
        """SeriesInstanceUIDs of the PACS's series that match the search filter (re-read after LIST_TTL)."""
        if time.monotonic() - self._listed[0] > LIST_TTL:
            found = self._client.search_for_series(search_filters=self._search_filter)
            self._listed = (time.monotonic(), [_tag(s, "0020000E") for s in found])
        return list(self._listed[1])

    def get_image_uri(self, image_id: str) -> str:
        """The cached NIfTI of series ``image_id`` (downloaded and converted on first use); "" for a malformed id."""
        if not _UID.fullmatch(image_id or "") or len(image_id) > 64:
            return ""
        nii = Path(self._datastore.image_path()) / f"{image_id}.nii.gz"
        if nii.is_file() and image_id in self._datastore.objects:
            return str(nii)
        series = self._read_series(image_id)
        tmp = Path(partial(Path(self._datastore.image_path()) / image_id))
        try:
            self._store_image(image_id, str(_write_ct(tmp / f"{image_id}.nii.gz", series)), self._dicom_info(image_id))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return str(nii)

    def _read_series(self, uid: str):
        folder = self._download(uid, Path(self._datastore.image_path()) / uid)
        try:
            return read_dicom_series(sorted(folder.glob("*.dcm")))
        except SeriesError as exc:
            raise HTTPException(status_code=422, detail=f"series {uid} cannot be used: {exc}") from None

    def _download(self, uid: str, folder: Path) -> Path:
        """All instances of series ``uid`` in ``folder``; a partial download is never mistaken for a full one."""
        if (folder / ".complete").is_file():
            return folder
        study = self._study_of(uid)
        tmp = Path(partial(folder))
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            for k, ds in enumerate(self._client.retrieve_series(study, uid)):
                # numbered, not named by SOPInstanceUID: instances whose headers lack it must not overwrite each other
                ds.save_as(str(tmp / f"{k:06d}.dcm"))
            (tmp / ".complete").write_text(f"{study}\n")
            shutil.rmtree(folder, ignore_errors=True)  # e.g. stock monailabel's unfinished download
            os.replace(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return folder

    def _study_of(self, uid: str) -> str:
        found = [s for s in self._client.search_for_series(search_filters={"SeriesInstanceUID": uid})
                 if _tag(s, "0020000E") == uid]
        if not found:
            raise HTTPException(status_code=404, detail=f"series {uid} is not on the DICOMweb server {self.name()}")
        return _tag(found[0], "0020000D")

    # ---- labels -------------------------------------------------------------------------------------------------
    def save_label(self, image_id: str, label_filename: str, label_tag: str, label_info: dict[str, Any],
                   label_id: str = "") -> str:
        """A final label is checked against its series, stored in the PACS as a DICOM SEG (one segment per organ,
        typed MANUAL), then cached; any other tag (inference results) stays in the local cache only."""
        label_tag = check_tag(label_tag)
        image_path = self.get_image_uri(image_id)
        if not image_path:
            raise HTTPException(status_code=404, detail=f"image {image_id!r} is not a series of {self.name()}")
        if label_tag != _FINAL:
            with http_errors():
                check_label_header(label_filename, read_volume(image_path).shape)
            return self._store_label(image_id, label_filename, label_tag, label_info)
        info = dict(label_info or {})
        array, affine, found = validated_label(image_path, label_filename, self.registry, info.get("label_info"))
        series = self._read_series(image_id)
        present = {o: v for o, v in found["arena_labels"].items() if found["arena_voxels"][o]}
        why = seg_left_out_reason(series)
        try:
            seg = None if why else build_segmentation(series, array, present, model_name="arena-seg", manual=True,
                                                      uid_seed="label")
        except (ValueError, KeyError, AttributeError, TypeError) as exc:  # highdicom refuses the source's headers
            why = f"it could not be built from the series' headers ({type(exc).__name__}: {exc})"
        if why:  # as the batch runner does: the label is kept (here, in the cache only), the SEG left out
            info.update(found, arena_source=LOCAL_ONLY, arena_warning=f"DICOM SEG left out: {why}")
            with temporary_nifti(array, affine) as tmp:
                self._store_label(image_id, tmp, _FINAL, info)
            logger.warning("label of %s kept in the cache only, not stored in the PACS: DICOM SEG left out: %s",
                           image_id, why)
            self._notify(image_id, found)
            return image_id
        try:
            self._client.store_instances([seg])
        except Exception as exc:  # requests' HTTPError, connection errors: the PACS did not take it
            raise HTTPException(status_code=502, detail=f"the DICOMweb server did not store the label's DICOM SEG: "
                                                        f"{exc}") from None
        info.update(found, SeriesInstanceUID=str(seg.SeriesInstanceUID), arena_source="DICOM SEG (saved here)")
        with temporary_nifti(array, affine) as tmp:
            self._store_label(image_id, tmp, _FINAL, info)
        logger.info("stored label of %s as SEG %s: %s", image_id, seg.SeriesInstanceUID, found["arena_voxels"])
        self._notify(image_id, found)
        return image_id

    def get_label_uri(self, label_id: str, label_tag: str, image_id: str = "") -> str:
        """The cached NIfTI label of image ``label_id`` (or ``image_id``); final ones follow the PACS."""
        image_id = image_id or label_id
        if label_tag not in TAGS or not _UID.fullmatch(image_id or ""):
            return ""
        if label_tag == _FINAL and image_id not in self._synced:
            self._sync_labels()
        return LocalDatastore.get_label_uri(self, image_id, label_tag)

    def get_labeled_images(self, label_tag: str | None = None, labels: list[str] | None = None) -> list[str]:
        self._sync_labels()
        return LocalDatastore.get_labeled_images(self, _FINAL)

    def get_unlabeled_images(self, label_tag: str | None = None, labels: list[str] | None = None) -> list[str]:
        labelled = set(self.get_labeled_images())
        return [s for s in self.list_images() if s not in labelled]

    def _download_labeled_data(self) -> None:  # stock datalist() calls this
        self._sync_labels()

    def _newest_segs(self) -> dict[str, str]:
        """{image series: SEG series} of the newest SEG referencing each listed image series."""
        images = set(self.list_images())
        newest: dict[str, tuple[str, str]] = {}
        for seg in self._client.search_for_series(search_filters={"Modality": "SEG"}):
            study, uid = _tag(seg, "0020000D"), _tag(seg, "0020000E")
            meta = self._client.retrieve_series_metadata(study, uid)[0]
            refs = meta.get("00081115", {}).get("Value") or []  # ReferencedSeriesSequence
            ref = _tag(refs[0], "0020000E") if refs else ""
            if ref not in images:
                continue
            when = _tag(meta, "00080023") + _tag(meta, "00080033") or _tag(meta, "00080021") + _tag(meta, "00080031")
            if ref not in newest or when >= newest[ref][0]:
                newest[ref] = (when, uid)
        return {ref: uid for ref, (_, uid) in newest.items()}

    def _sync_labels(self) -> None:
        """Cache the newest SEG of every series as a NIfTI of ids 1..n; drop cached labels whose SEG is gone."""
        segs = self._newest_segs()
        for image_id in set(LocalDatastore.get_labeled_images(self, _FINAL)) - set(segs):
            if (LocalDatastore.get_label_info(self, image_id, _FINAL) or {}).get("arena_source") == LOCAL_ONLY:
                continue  # never was in the PACS (its series cannot be referenced by a SEG)
            logger.info("label of %s is no longer in the PACS: removed from the cache", image_id)
            LocalDatastore.remove_label(self, image_id, _FINAL)
        for image_id, seg_uid in segs.items():
            info = LocalDatastore.get_label_info(self, image_id, _FINAL) or {}
            if info.get("SeriesInstanceUID") == seg_uid:
                continue
            try:
                self._cache_seg(image_id, seg_uid)
            except (HTTPException, ValueError, OSError) as exc:
                logger.warning("SEG %s of series %s skipped: %s", seg_uid, image_id, getattr(exc, "detail", exc))
        self._synced.update(segs)

    def _cache_seg(self, image_id: str, seg_uid: str) -> None:
        self.get_image_uri(image_id)
        series = self._read_series(image_id)
        folder = self._download(seg_uid, Path(self._datastore.label_path(_FINAL)) / seg_uid)
        files = sorted(folder.glob("*.dcm"))
        known = self.registry.ids()  # segments of organs the registry knows, on their ids (a SEG adds no organ)
        wanted = {norm_name(o): i for o, i in known.items()}
        array, kept = read_segmentation(files[0], series, lambda name: wanted.get(norm_name(name)))
        counts = {o: int((array == i).sum()) for o, i in known.items()}
        if not kept or not any(counts.values()):
            raise ValueError(f"none of its segments is a non-empty {', '.join(known)}")
        named = {o for o in known if any(norm_name(o) == norm_name(name) for name in kept)}
        info = {"SeriesInstanceUID": seg_uid, "arena_labels": {o: known[o] for o in named},
                "arena_voxels": {o: counts[o] for o in named}, "arena_source": "DICOM SEG", "segments": kept}
        tmp_dir = Path(partial(Path(self._datastore.label_path(_FINAL)) / seg_uid))
        try:
            self._store_label(image_id, str(write_nifti_mask(tmp_dir / "label.nii.gz", array, series.affine)), _FINAL,
                              info)
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)
        logger.info("cached SEG %s of series %s: %s", seg_uid, image_id, counts)


def dicomweb_datastore(url: str, registry: OrganRegistry) -> ArenaDicomWebDatastore:
    """The datastore of ``--studies http(s)://.../dicom-web``, with MONAI Label's DICOMweb settings (credentials,
    QIDO/WADO/STOW prefixes, search filter, cache path); no dcmqi download."""
    from dicomweb_client.session_utils import create_session_from_user_pass

    session = None
    if settings.MONAI_LABEL_DICOMWEB_USERNAME and settings.MONAI_LABEL_DICOMWEB_PASSWORD:
        session = create_session_from_user_pass(settings.MONAI_LABEL_DICOMWEB_USERNAME,
                                                settings.MONAI_LABEL_DICOMWEB_PASSWORD)
    client = DICOMwebClientX(url=url, session=session, qido_url_prefix=settings.MONAI_LABEL_QIDO_PREFIX,
                             wado_url_prefix=settings.MONAI_LABEL_WADO_PREFIX,
                             stow_url_prefix=settings.MONAI_LABEL_STOW_PREFIX)
    cache = (settings.MONAI_LABEL_DICOMWEB_CACHE_PATH or "").strip() or None
    return ArenaDicomWebDatastore(client, registry, settings.MONAI_LABEL_DICOMWEB_SEARCH_FILTER, cache)
