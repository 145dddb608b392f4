"""Where an infer request's image comes from: an id of the datastore, or a file the server itself just received.

Stock ``MONAILabelApp.infer`` treats an image id that exists as a path relative to the server's working directory
as that file, so ``../../etc/passwd`` would be read. Here an id is resolved through the datastore only. The only
paths accepted are those the server's own endpoints create: an uploaded image (``POST /infer?file=``, written by
the endpoint into that request's own temporary folder, :mod:`lib.compat.endpoints`; another request's upload is refused)
and a session's image (under the session store). An upload must be a self-contained volume (:mod:`lib.uploads`).
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import HTTPException

from lib.compat.endpoints import request_upload
from lib.errors import http_errors
from lib.uploads import check_upload


def resolve_image(image: str, datastore: Any, session_root: str | None) -> tuple[str, bool]:
    """(path, is_datastore_id) of a request's image; 404 when it is neither a datastore id nor a server upload."""
    try:
        uri = datastore.get_image_uri(image)
    except HTTPException as exc:
        if exc.status_code != 404:  # a series that exists but cannot be used says why
            raise
        uri = ""
    except Exception:  # remote datastores raise for unknown ids
        uri = ""
    if uri and os.path.exists(uri):
        return uri, True
    real = os.path.realpath(image)
    if os.path.isfile(real) and request_upload(real):
        with http_errors():
            check_upload(real, "image")
        return real, False
    if os.path.exists(real) and _under(real, session_root):
        return real, False
    sample = ", ".join(sorted(datastore.list_images())[:3])
    raise HTTPException(status_code=404, detail=f"image {image!r} is not in the datastore; give an image id from "
                                                f"/datastore (e.g. {sample or 'upload one first'})")


def _under(path: str, root: str | None) -> bool:
    if not root:
        return False
    root = os.path.realpath(root)
    return os.path.commonpath([path, root]) == root and path != root
