"""Turning the app's errors into HTTP answers with a message (FastAPI's HTTPException becomes a proper 4xx/5xx).

Stock MONAI Label answers 500 to most bad requests; everything the app raises in the request path goes through
:func:`http_errors` so a client gets the status that fits and one line saying what to fix.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from fastapi import HTTPException

from arena_seg.errors import InputError
from arena_seg.models.checkpoint import CheckpointError


class NoAdaptedModelError(LookupError):
    """No training run has finished yet, so infer `arena` has nothing to serve."""


class UnknownVersionError(LookupError):
    """A version id that the version store does not hold."""


@contextlib.contextmanager
def http_errors() -> Iterator[None]:
    """Map the app's exceptions to HTTPException: 400 bad input, 404 unknown version, 409 no adapted model yet,
    503 the foundation weights are missing on the server."""
    try:
        yield
    except HTTPException:
        raise
    except InputError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from exc
    except UnknownVersionError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from exc
    except NoAdaptedModelError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    except (FileNotFoundError, CheckpointError) as exc:
        raise HTTPException(status_code=503, detail=f"the server's model cannot be loaded: {exc}") from exc
