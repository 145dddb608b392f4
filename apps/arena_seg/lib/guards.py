"""Request checks that stock MONAI Label leaves to its subprocesses, done in the request path instead.

``POST /train/{model}`` answers 200 to any options and reads them only inside the training subprocess, which then
fails where nobody sees it. The server's train endpoint functions are wrapped once, at start, so the app checks the
model name, the options and the labelled scans first and answers 4xx with a message. Batch inference's default
request divides the work by the GPU count and fails on a CPU server; :class:`CpuSafeBatchInfer` fixes that.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from monailabel.interfaces.tasks.batch_infer import BatchInferTask

logger = logging.getLogger(__name__)


def install_train_checks(check: Callable[[str, dict[str, Any]], None]) -> None:
    """Wrap monailabel.endpoints.train.run_model / run so ``check(model, params)`` runs before a task starts."""
    import monailabel.endpoints.train as endpoint

    if getattr(endpoint.run_model, "_arena_checked", False):
        return
    run_model, run_all = endpoint.run_model, endpoint.run

    def checked_run_model(model: str, params: dict | None = None, run_sync: bool | None = False,
                          enqueue: bool | None = False) -> Any:
        check(model, dict(params or {}))
        return run_model(model, params, run_sync, enqueue)

    def checked_run(params: dict | None = None, run_sync: bool | None = False) -> Any:
        from monailabel.interfaces.utils.app import app_instance

        for model in app_instance().info()["trainers"]:
            flat = {k: v for k, v in (params or {}).items() if not isinstance(v, dict)}
            check(model, {**flat, **dict((params or {}).get(model) or {})})
        return run_all(params, run_sync)

    checked_run_model._arena_checked = True  # type: ignore[attr-defined]
    endpoint.run_model = checked_run_model
    endpoint.run = checked_run
    logger.info("train requests are checked before a task is submitted")


class CpuSafeBatchInfer(BatchInferTask):
    """Stock batch inference, with ``device`` cpu and ``multi_gpu`` off when the server has no GPU."""

    def __call__(self, request: dict[str, Any], datastore: Any, infer: Callable) -> Any:
        if not torch.cuda.is_available():
            request = {**request, "device": "cpu", "multi_gpu": False}
        return super().__call__(request, datastore, infer)
