"""Request checks that stock MONAI Label leaves to its subprocesses, done in the request path instead.

``POST /train/{model}`` answers 200 to any options and reads them only inside the training subprocess, which then
fails where nobody sees it. The server's train endpoint functions are wrapped once, at start, so the app checks the
model name, the options and the labelled scans first and answers 4xx with a message. ``POST /batch/infer/{model}``
gets the same treatment: an unknown model, or `arena` before any training run, is a 4xx, not a failed task.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import HTTPException

logger = logging.getLogger(__name__)


def install_train_checks(check: Callable[[str, dict[str, Any]], None]) -> None:
    """Wrap monailabel.endpoints.train.run_model / run so ``check(model, params)`` runs before a task starts."""
    import monailabel.endpoints.train as endpoint

    if getattr(endpoint.run_model, "_arena_checked", False):
        return
    run_model, run_all = endpoint.run_model, endpoint.run

    def checked_run_model(model: str, params: dict | None = None, run_sync: bool | None = False,
                          enqueue: bool | None = False) -> Any:
        _same_model(model, params)
        check(model, dict(params or {}))
        return run_model(model, params, run_sync, enqueue)

    def checked_run(params: dict | None = None, run_sync: bool | None = False) -> Any:
        from monailabel.interfaces.utils.app import app_instance

        if "model" in (params or {}):
            raise HTTPException(status_code=400, detail="POST /train/ trains every trainer: leave 'model' out of "
                                                        "the body, or use POST /train/{model}")
        for model in app_instance().info()["trainers"]:
            _same_model(model, (params or {}).get(model))
            flat = {k: v for k, v in (params or {}).items() if not isinstance(v, dict)}
            check(model, {**flat, **dict((params or {}).get(model) or {})})
        return run_all(params, run_sync)

    checked_run_model._arena_checked = True  # type: ignore[attr-defined]
    endpoint.run_model = checked_run_model
    endpoint.run = checked_run
    logger.info("train requests are checked before a task is submitted")


def install_batch_checks(check: Callable[[str, dict[str, Any]], None]) -> None:
    """Wrap monailabel.endpoints.batch_infer.run so ``check(model, params)`` runs before a task starts."""
    import monailabel.endpoints.batch_infer as endpoint

    if getattr(endpoint.run, "_arena_checked", False):
        return
    run = endpoint.run

    def checked_run(model: str, images: Any = None, params: dict | None = None, run_sync: bool | None = False) -> Any:
        _same_model(model, params)
        check(model, {"images": images, **dict(params or {})})
        return run(model, images, params, run_sync)

    checked_run._arena_checked = True  # type: ignore[attr-defined]
    endpoint.run = checked_run


def install_scoring_checks() -> None:
    """Wrap monailabel.endpoints.scoring.run_method: an unknown scoring method is a 404, not a failed task."""
    import monailabel.endpoints.scoring as endpoint

    if getattr(endpoint.run_method, "_arena_checked", False):
        return
    run_method = endpoint.run_method

    def checked_run_method(method: str, params: dict | None = None, run_sync: bool | None = False) -> Any:
        from monailabel.interfaces.utils.app import app_instance

        known = list(app_instance().info().get("scoring") or {})
        if method not in known:
            raise HTTPException(status_code=404, detail=f"unknown scoring method {str(method)[:80]!r}; methods: "
                                                        f"{', '.join(known) or 'none (this app has no scoring)'}")
        return run_method(method, params, run_sync)

    checked_run_method._arena_checked = True  # type: ignore[attr-defined]
    endpoint.run_method = checked_run_method


def _same_model(model: str, params: Any) -> None:
    """The path's model is the model: a body naming another one would run it after the checks ran on this one."""
    if isinstance(params, dict) and params.get("model") not in (None, model):
        raise HTTPException(status_code=400, detail=f"the body names model {str(params['model'])[:80]!r} but the "
                                                    f"path names {model!r}; leave 'model' out of the body")
