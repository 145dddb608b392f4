"""Checked replacements of two stock endpoint functions that take names and archives from requests.

* ``PUT /session/``: uploaded file names are reduced to a plain base name, and ``uncompress=true`` extracts with
  :func:`lib.archives.extract_archive` (members inside the session folder only, size capped) instead of
  ``shutil.unpack_archive``.
* ``GET /datastore/dataset``: the zip holds the images and final labels the datastore serves (paths confined to
  the studies folder), is built in an unnamed temporary file and streamed, so nothing is left on disk; with no
  labelled image it is a 404 with a message.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import zipfile
from collections.abc import Iterator
from typing import Any

from fastapi import File, HTTPException, UploadFile
from fastapi.background import BackgroundTasks
from fastapi.responses import StreamingResponse
from monailabel.interfaces.datastore import DefaultLabelTag

from lib.archives import extract_archive
from lib.errors import http_errors

logger = logging.getLogger(__name__)

MAX_EXTRACT_BYTES = 1 << 30  #: set from --conf max_upload_mb at start
#: CT volumes compress a few times, not a thousand: an archive may expand to this many times its size (at least
#: MIN_EXTRACT_BYTES), and never beyond MAX_EXTRACT_BYTES
MAX_RATIO, MIN_EXTRACT_BYTES = 50, 64 << 20
_PLAIN = re.compile(r"[^A-Za-z0-9._-]+")


def _plain_name(filename: str | None, index: int) -> str:
    base = _PLAIN.sub("_", os.path.basename((filename or "").replace("\\", "/"))).lstrip(".")
    return base[:128] or f"upload-{index}"


def create_session(background_tasks: BackgroundTasks, uncompress: bool = False, expiry: int = 0,
                   files: list[UploadFile] = File(...)) -> dict[str, Any]:  # noqa: B008 - FastAPI's idiom
    """Stock create_session with plain names and checked extraction (runs inside the request's temp folder)."""
    from monailabel.interfaces.utils.app import app_instance

    sessions = app_instance().sessions()
    if sessions is None:
        raise HTTPException(status_code=406, detail="sessions are not enabled on this server")
    if not files:
        raise HTTPException(status_code=400, detail="send at least one file")
    from lib.compat.endpoints import request_tempdir

    received = tempfile.mkdtemp(prefix="session-", dir=request_tempdir())
    paths = []
    for i, upload in enumerate(files):
        path = os.path.join(received, _plain_name(upload.filename, i))
        with open(path, "xb") as out:
            while chunk := upload.file.read(1 << 20):
                out.write(chunk)
        paths.append(path)
    source = paths[0] if len(paths) == 1 else received
    if uncompress:
        if len(paths) != 1:
            raise HTTPException(status_code=400, detail="uncompress=true takes exactly one archive")
        cap = min(MAX_EXTRACT_BYTES, max(MIN_EXTRACT_BYTES, MAX_RATIO * os.path.getsize(paths[0])))
        with http_errors():
            source = str(extract_archive(paths[0], os.path.join(received, "extracted"), cap))
        os.unlink(paths[0])
    session_id, info = sessions.add_session(source, expiry, False)
    return {"session_id": session_id, "session_info": info.to_json()}


def download_dataset(limit_cases: int | None = None) -> StreamingResponse:
    """The labelled images and their final labels as a streamed zip (``images/``, ``labels/``, metadata.json)."""
    from monailabel.interfaces.utils.app import app_instance

    datastore = app_instance().datastore()
    final = DefaultLabelTag.FINAL.value
    pairs = [(i, datastore.get_image_uri(i), datastore.get_label_uri(i, final))
             for i in sorted(datastore.get_labeled_images(final))]
    pairs = [(i, image, label) for i, image, label in pairs if image and label and os.path.isfile(image)
             and os.path.isfile(label)][: limit_cases or None]
    if not pairs:
        raise HTTPException(status_code=404, detail="nothing to export: no image has a final label yet")
    archive = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the stream; unnamed, so nothing is left on disk
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for image_id, image, label in pairs:
            zf.write(image, f"images/{os.path.basename(image)}")
            zf.write(label, f"labels/{os.path.basename(label)}")
            info = {k: v for k, v in datastore.get_image_info(image_id).items() if k != "path"}  # no server paths
            zf.writestr(f"metadata/{image_id}.json", _json({"image": info,
                                                            "label": datastore.get_label_info(image_id, final)}))
    archive.seek(0)
    return StreamingResponse(_chunks(archive), media_type="application/zip",
                             headers={"Content-Disposition": 'attachment; filename="dataset.zip"'})


def _json(value: Any) -> str:
    import json

    return json.dumps(value, indent=2, default=str)


def _chunks(f: Any) -> Iterator[bytes]:
    try:
        while chunk := f.read(1 << 20):
            yield chunk
    finally:
        f.close()


def replace_stock() -> None:
    """Point the stock endpoints at the functions above (they call these module-level names)."""
    import monailabel.endpoints.datastore as datastore_endpoints
    import monailabel.endpoints.session as session_endpoints

    for module, name, new in ((session_endpoints, "create_session", create_session),
                              (datastore_endpoints, "download_dataset", download_dataset)):
        if not callable(getattr(module, name, None)):
            raise RuntimeError(f"{module.__name__}.{name} is gone; review lib/sessions.py for this monailabel")
        setattr(module, name, new)
