"""MONAI Label's endpoints, run off the event loop, each in a temporary folder of its own.

Stock endpoints are ``async def`` functions that do their work (inference, file copies) synchronously: while one
inference runs, the event loop is blocked and even ``/info/`` waits for it. They also write uploads to the shared
temp folder and remove them only when the request succeeded. Here, once at start:

* every stock endpoint runs in a worker thread (inference and strategies one at a time, the rest in parallel);
* each request gets its own temporary folder (``tempfile`` inside the stock endpoint modules points there),
  removed when the request ends, refused or not; an uploaded image can therefore be inferred on only by the
  request that uploaded it (:func:`request_upload`);
* form fields ``params`` / ``info`` that are not a JSON object are a 400, not a 500;
* session uploads (``uncompress=true``) and dataset exports use the checked versions of :mod:`lib.compat.sessions`.

Every stock function replaced here is looked up by name first: a monailabel release that renames one fails at
start with a message, not silently.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import shutil
import tempfile
import threading
from collections.abc import Callable
from typing import Any

from fastapi import HTTPException

from lib.names import inside

logger = logging.getLogger(__name__)

_local = threading.local()
_SERIAL_PREFIXES = ("/infer", "/activelearning")  # the model's work: one request at a time, as before
_MODULES = ("infer", "datastore", "session", "model", "wsi_infer")  # stock endpoint modules that write temp files


def request_tempdir() -> str | None:
    """The temporary folder of the request running in this thread (None outside a request)."""
    return getattr(_local, "tmp", None)


def request_upload(path: str) -> bool:
    """Whether ``path`` is a file that the current request uploaded."""
    tmp = request_tempdir()
    return bool(tmp) and inside(path, tmp)


class _RequestTempfile:
    """Stands in for the ``tempfile`` module inside stock endpoint modules: new files go to the request's folder."""

    def __getattr__(self, name: str) -> Any:
        return getattr(tempfile, name)

    @staticmethod
    def _dir(kwargs: dict) -> dict:
        if kwargs.get("dir") is None:
            kwargs["dir"] = request_tempdir()
        return kwargs

    def NamedTemporaryFile(self, *args: Any, **kwargs: Any) -> Any:  # noqa: N802 - the tempfile API's name
        return tempfile.NamedTemporaryFile(*args, **self._dir(kwargs))

    def TemporaryDirectory(self, *args: Any, **kwargs: Any) -> Any:  # noqa: N802 - the tempfile API's name
        return tempfile.TemporaryDirectory(*args, **self._dir(kwargs))

    def mkdtemp(self, *args: Any, **kwargs: Any) -> str:
        return tempfile.mkdtemp(*args, **self._dir(kwargs))

    def mkstemp(self, *args: Any, **kwargs: Any) -> tuple[int, str]:
        return tempfile.mkstemp(*args, **self._dir(kwargs))


def _check_json_fields(values: dict[str, Any]) -> None:
    for key in ("params", "info"):
        value = values.get(key)
        if not isinstance(value, str):
            continue
        try:
            parsed = json.loads(value) if value.strip() else {}
        except ValueError as exc:
            raise HTTPException(status_code=400, detail=f"form field {key!r} is not valid JSON ({exc})") from None
        if not isinstance(parsed, dict):
            raise HTTPException(status_code=400, detail=f"form field {key!r} must be a JSON object, got "
                                                        f"{type(parsed).__name__}")


def _check_infer_inputs(values: dict[str, Any]) -> None:
    """Stock infer answers 500 when a request names no image, or asks for DICOM SEG output on a local datastore."""
    if not {"file", "session_id", "image"} <= set(values):
        return  # not the infer endpoint
    if not (values.get("image") or values.get("session_id") or values.get("file")):
        raise HTTPException(status_code=400, detail="give image=ID (from /datastore), session_id=ID, or an image file")
    if str(getattr(values.get("output"), "value", values.get("output"))) == "dicom_seg":
        from monailabel.datastore.dicom import DICOMWebDatastore
        from monailabel.interfaces.utils.app import app_instance

        if not isinstance(app_instance().datastore(), DICOMWebDatastore):
            raise HTTPException(status_code=400, detail="output=dicom_seg needs a DICOMweb datastore; use output=image "
                                                        "or json, or arena-seg infer for DICOM SEG files")


def _run_in_request_folder(call: Callable, values: dict[str, Any]) -> Any:
    """Run the stock coroutine ``call(**values)`` to completion in this worker thread, inside a new temp folder."""
    _local.tmp = tempfile.mkdtemp(prefix="arena-request-")
    try:
        return asyncio.run(call(**values))
    finally:
        shutil.rmtree(_local.tmp, ignore_errors=True)
        _local.tmp = None


def _threaded(call: Callable, limiter: Any) -> Callable:
    import anyio.to_thread

    @functools.wraps(call)
    async def endpoint(**values: Any) -> Any:
        _check_json_fields(values)
        _check_infer_inputs(values)
        return await anyio.to_thread.run_sync(functools.partial(_run_in_request_folder, call, values),
                                              limiter=limiter)

    endpoint._arena_threaded = True  # type: ignore[attr-defined]
    return endpoint


def install_endpoints(max_extract_bytes: int) -> None:
    """Apply the changes above to the running MONAI Label app (once; later calls only update the size cap)."""
    import importlib

    import anyio
    from monailabel.app import app

    import lib.compat.sessions as sessions

    sessions.MAX_EXTRACT_BYTES = max_extract_bytes
    for name in _MODULES:
        module = importlib.import_module(f"monailabel.endpoints.{name}")
        if not hasattr(module, "tempfile"):
            raise RuntimeError(f"monailabel.endpoints.{name} no longer uses tempfile; review lib/endpoints.py")
        module.tempfile = _RequestTempfile()
    sessions.replace_stock()

    serial = anyio.CapacityLimiter(1)
    for route in _api_routes(app.router.routes):
        if not route.endpoint.__module__.startswith("monailabel.endpoints") or _truly_async(route.endpoint):
            continue
        call = route.endpoint
        if getattr(call, "_arena_threaded", False) or not asyncio.iscoroutinefunction(call):
            continue
        limiter = serial if route.path.startswith(_SERIAL_PREFIXES) else None
        # FastAPI builds the served route from ``endpoint`` (its signature read through __wrapped__)
        route.endpoint = route.dependant.call = _threaded(call, limiter)
    logger.info("endpoints run in worker threads, each request in its own temporary folder")


def _truly_async(endpoint: Callable) -> bool:
    """Endpoints that await the request itself (the DICOMweb proxy reads the body, streams the PACS's answer):
    they belong on the event loop, and block nothing there."""
    import inspect

    from starlette.requests import Request

    return endpoint.__module__ == "monailabel.endpoints.proxy" or any(
        p.annotation in (Request, "Request") for p in inspect.signature(endpoint).parameters.values())


def _api_routes(routes: list) -> list:
    """Every APIRoute, including those of routers added with include_router (FastAPI keeps them in the included
    router and builds the served route from it on the first request, after this runs)."""
    from fastapi.routing import APIRoute

    found = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        included = getattr(getattr(route, "include_context", None), "included_router", None)
        if included is not None:
            found.extend(_api_routes(included.routes))
    return found
