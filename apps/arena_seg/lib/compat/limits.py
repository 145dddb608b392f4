"""A request body limit for the whole server: stock MONAI Label writes any upload, whatever its size, to disk.

Installed by :func:`lib.compat.firewall.install_firewall`, in the server's middleware stack.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.exceptions import HTTPException

logger = logging.getLogger(__name__)


def _message(limit: int, size: int | None = None) -> str:
    """``size`` is None for a streamed body, refused as soon as it passes the limit (its full size is unknown)."""
    what = "request body" if size is None else f"request body of {size / 2**20:.1f} MB"
    return f"{what} is over the server's limit of {limit / 2**20:g} MB (--conf max_upload_mb)"


class _BodyTooLargeError(HTTPException):
    """Raised while a body without Content-Length streams in. An HTTPException, so that FastAPI, which turns any
    other error met while parsing a form into 400 "error parsing the body", passes it on and answers 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, _message(limit))


class BodyLimit:
    """ASGI wrapper: 413 for an HTTP request whose body is over ``limit`` bytes (by Content-Length, or counted as
    it streams in), before the endpoint stores any of it."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, int(limit)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await self._reject(send, int(length))
        received, started = 0, False

        async def counted() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _BodyTooLargeError(self.limit)
            return message

        async def tracked(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except _BodyTooLargeError:
            if not started:
                await self._reject(send, None)

    async def _reject(self, send: Any, size: int | None) -> None:
        await send_json(send, 413, _message(self.limit, size))


async def send_json(send: Any, status: int, detail: str) -> None:
    """Answer an HTTP request from ASGI middleware: ``status`` with {"detail": ...}, as FastAPI would."""
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
