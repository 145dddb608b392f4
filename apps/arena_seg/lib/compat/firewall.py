"""The server's front door: every HTTP request passes here before MONAI Label routes it.

* **Cross-origin requests** are refused (403) unless their ``Origin`` is in ``--conf cors_origins``: stock MONAI
  Label reflects any origin with credentials allowed, so any web page the clinician opens could drive the API of a
  server on 127.0.0.1. CORS headers are given to the listed origins only. Clients that are not browsers (Slicer,
  ``monailabel.client``, curl) send no ``Origin`` and are not affected.
* **Query values are data**: a NUL or other control character anywhere in the path or query is a 400; ``tag`` must
  be one of the label tags (:mod:`lib.names`); ``session_id`` must look like an id the server issued; numeric
  options of ``/logs`` have bounds.
* **Endpoints the app does not offer are switched off** with a message: the OHIF viewer, the DICOMweb proxy on a
  local datastore, WSI inference, and uploading or deleting model files (versions are made by training).

Starlette builds its middleware stack when the first ASGI event arrives, before MONAI Label creates the app
(inside the lifespan event), so the stack is rebuilt here with the CORS policy and wrapped.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from lib.compat.limits import BodyLimit, send_json
from lib.names import SESSION_ID, TAGS

logger = logging.getLogger(__name__)

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BOUNDS = {"lines": (0, 100_000), "refresh": (0, 3600), "limit_cases": (1, 1_000_000), "expiry": (0, 7 * 86400),
           "max_batch_size": (0, 1_000_000)}


class Firewall:
    """ASGI wrapper applying the checks above; anything it refuses never reaches an endpoint."""

    def __init__(self, app: Any, origins: Iterable[str] = (), dicomweb: bool = False) -> None:
        self.app, self.origins, self.dicomweb = app, frozenset(o.rstrip("/") for o in origins), dicomweb

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            refusal = self.check(scope)
            if refusal is not None:
                status, message = refusal
                logger.warning("refused %s %s: %s", scope.get("method"), scope.get("path"), message)
                return await send_json(send, status, message)
        return await self.app(scope, receive, send)

    def check(self, scope: dict) -> tuple[int, str] | None:
        """(status, message) for a request to refuse, else None."""
        headers = dict(scope.get("headers") or [])
        origin = headers.get(b"origin", b"").decode("latin-1").rstrip("/")
        fetch_site = headers.get(b"sec-fetch-site", b"").decode("latin-1")
        if (origin and origin not in self.origins and not _same_origin(origin, headers)) or (
            not origin and fetch_site in ("cross-site", "same-site")  # e.g. <img src=...> on another page
        ):
            return 403, (f"cross-origin request from {(origin or fetch_site)[:100]} refused; to allow a web viewer, "
                         "start the server with --conf cors_origins ORIGIN[,ORIGIN...]")
        path, method = scope.get("path", ""), scope.get("method", "GET")
        raw_query = scope.get("query_string", b"").decode("latin-1")
        if _CONTROL.search(path) or _CONTROL.search(unquote_plus(raw_query)):
            return 400, "control characters (such as NUL) are not allowed in the path or query"
        off = self._switched_off(path, method)
        if off:
            return 404 if method != "PUT" else 405, off
        if path.startswith("/session/") and path.rstrip("/") != "/session":
            session = path[len("/session/"):].rstrip("/")
            if not SESSION_ID.fullmatch(session):
                return 404, f"session {session[:80]!r} not found; use the session_id that PUT /session/ returned"
        for key, value in parse_qsl(raw_query, keep_blank_values=True):
            refusal = _check_query(key, value)
            if refusal:
                return 400, refusal
        return None

    def _switched_off(self, path: str, method: str) -> str | None:
        if path.startswith("/ohif"):
            return "the OHIF viewer is not served by arena-seg; use 3D Slicer's MONAI Label module"
        if path.startswith("/proxy") and not self.dicomweb:
            return "the DICOMweb proxy is only offered when the server's studies are a DICOMweb (PACS) address"
        if path.startswith("/infer/wsi"):
            return "arena-seg has no whole-slide-image models"
        if path.rstrip("/") == "/logs/gpu" and shutil.which("nvidia-smi") is None:
            return "this server has no GPU (nvidia-smi is not installed)"
        if path.startswith("/model/") and method in ("PUT", "DELETE", "POST"):
            return ("model files cannot be uploaded or deleted over the API: versions are made by training and "
                    "chosen with the `version` option")
        return None


def _check_query(key: str, value: str) -> str | None:
    if key in ("tag", "label_tag") and value not in TAGS:
        return f"{key} {value[:80]!r}: use one of {', '.join(TAGS)} (a tag is a name from this list, not a path)"
    if key == "session_id" and value and not SESSION_ID.fullmatch(value):
        return f"session_id {value[:80]!r}: use the session_id that PUT /session/ returned"
    if key in _BOUNDS:
        low, high = _BOUNDS[key]
        if not value.isdigit() or not low <= int(value) <= high:
            return f"{key} {value[:40]!r}: give an integer from {low} to {high}"
    if len(value) > 4096:
        return f"query value of {key} is {len(value)} characters long; at most 4096"
    return None


def _same_origin(origin: str, headers: dict) -> bool:
    """A page served by this server itself (its /docs) calling it back, addressed by IP or localhost: a page on a
    domain name that happens to point here (DNS rebinding) is another site."""
    host = headers.get(b"host", b"").decode("latin-1")
    name = host.rsplit(":", 1)[0].strip("[]") if host.count(":") <= 1 or host.startswith("[") else host
    return bool(host) and origin in (f"http://{host}", f"https://{host}") and (name == "localhost" or _is_ip(name))


def _is_ip(name: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def install_firewall(limit_mb: float, origins: Iterable[str], dicomweb: bool) -> None:
    """Rebuild the running MONAI Label app's middleware stack with CORS for ``origins`` only, a body limit of
    ``limit_mb`` and the :class:`Firewall` in front (idempotent: a second call updates the settings)."""
    from fastapi.middleware import Middleware
    from fastapi.middleware.cors import CORSMiddleware
    from monailabel.app import app

    origins = [o.rstrip("/") for o in origins]
    app.user_middleware = [Middleware(CORSMiddleware, allow_origins=origins, allow_credentials=False,
                                      allow_methods=["*"], allow_headers=["*"])]
    stack = BodyLimit(app.build_middleware_stack(), int(limit_mb * 2**20))
    app.middleware_stack = Firewall(stack, origins, dicomweb)
    logger.info("cross-origin requests allowed from: %s; request bodies over %g MB refused",
                ", ".join(origins) or "none", limit_mb)
