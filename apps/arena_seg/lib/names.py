"""Names that arrive in requests are data, never paths.

* Label tags come from a fixed vocabulary (MONAI Label's own: ``final``, ``original``), matched exactly: stock
  ``LocalDatastore`` joins the tag onto ``labels/``, so ``tag=/any/dir`` or ``../../x`` would be a folder anywhere.
* A new image id follows :data:`SAFE_ID`; an existing one is looked up as a key of the datastore, never joined.
* Every path the app opens, writes or deletes for a request is resolved (symlinks included) and must lie inside
  its root (:func:`inside`).
"""

from __future__ import annotations

import os
import re

from fastapi import HTTPException
from monailabel.interfaces.datastore import DefaultLabelTag

#: the label tags a request may name (MONAI Label's vocabulary); anything else is refused
TAGS: tuple[str, ...] = tuple(t.value for t in DefaultLabelTag)
SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # no separators, no "..", nothing hidden
SESSION_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")  # uuid1, as issued


def check_tag(tag: object) -> str:
    """``tag`` when it is one of :data:`TAGS`; HTTP 400 otherwise."""
    if not isinstance(tag, str) or tag not in TAGS:
        raise HTTPException(status_code=400, detail=f"label tag {str(tag)[:80]!r}: use one of {', '.join(TAGS)} "
                                                    "(a tag is a name from this list, not a path)")
    return tag


def check_new_id(image_id: object) -> str:
    """An id for a new image: letters, digits, '.', '_' and '-', no '..'; HTTP 400 otherwise."""
    if not isinstance(image_id, str) or not SAFE_ID.fullmatch(image_id) or ".." in image_id:
        raise HTTPException(status_code=400, detail=f"image id {str(image_id)[:80]!r}: use letters, digits, '.', "
                                                    "'_' and '-' only (no path separators or '..')")
    return image_id


def inside(path: str | os.PathLike, root: str | os.PathLike) -> bool:
    """Whether ``path``, with every symlink resolved, lies strictly inside ``root`` (also resolved)."""
    real, base = os.path.realpath(path), os.path.realpath(root)
    return real != base and real.startswith(base.rstrip(os.sep) + os.sep)
