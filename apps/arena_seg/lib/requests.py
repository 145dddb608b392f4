"""Where an infer request's image comes from: an id of the datastore, or a file the server itself just received.

Stock ``MONAILabelApp.infer`` treats an image id that exists as a path relative to the server's working directory
as that file, so ``../../etc/passwd`` would be read. Here an id is resolved through the datastore only. The only
paths accepted are those the server's own endpoints create: an uploaded image (``POST /infer?file=``, written by
the endpoint into the temp folder as ``tmp`` + 8 random characters + the extension) and a session's image
(under the session store).
"""

from __future__ import annotations

import os
import re
import tempfile
from typing import Any

from fastapi import HTTPException

_UPLOAD = re.compile(r"tmp[a-z0-9_]{8}(\.[A-Za-z0-9]+){1,2}")


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
    if os.path.isfile(real) and (_is_upload(real) or _under(real, session_root)):
        return real, False
    sample = ", ".join(sorted(datastore.list_images())[:3])
    raise HTTPException(status_code=404, detail=f"image {image!r} is not in the datastore; give an image id from "
                                                f"/datastore (e.g. {sample or 'upload one first'})")


def _is_upload(path: str) -> bool:
    return os.path.dirname(path) == os.path.realpath(tempfile.gettempdir()) and bool(
        _UPLOAD.fullmatch(os.path.basename(path)))


def _under(path: str, root: str | None) -> bool:
    if not root:
        return False
    root = os.path.realpath(root)
    return os.path.commonpath([path, root]) == root and path != root
