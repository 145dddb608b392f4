"""Training while annotating (``--conf auto_train true``): each saved final label queues an update of its organs.

A saved label adds the organs it contains to a queue; one worker thread of the server turns the queue into runs of
the ordinary `arena` trainer (MONAI Label's train task: a subprocess, shown by ``/train`` and Slicer's progress bar),
one organ per run, so each organ's adapter is updated on its own and the others' versions stay untouched:

* never two trainings at once: the worker waits while any training runs or is queued (a user's Train included);
* a burst of saves becomes one run: saves of the same organ while it waits (or trains) leave one entry, and the
  worker starts nothing until no label has been saved for ``settle_s``;
* an organ with a version that has an adapter gets a short warm-started update (``auto_train_epochs``, from that
  adapter: :mod:`arena_seg.training.warm_start`); an organ without one gets a first full run (``epochs``).

A run that fails leaves every version as it was (:mod:`lib.versions`); the next save queues the organ again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)


class AutoTrainer:
    """The queue and its worker. ``start(organ)`` submits a run and says whether it did (False: another training
    got there first, try again later); ``busy()`` says whether a training runs or is queued."""

    def __init__(self, start: Callable[[str], dict[str, Any] | None], busy: Callable[[], bool],
                 settle_s: float = 2.0, poll_s: float = 1.0) -> None:
        self._start, self._busy = start, busy
        self.settle_s, self.poll_s = settle_s, poll_s
        self._pending: dict[str, float] = {}  # organ -> time of its latest save; insertion order = first come
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self.runs: list[dict[str, Any]] = []  # what was started (the last 20), for /info
        self.last_error: str | None = None

    def label_saved(self, image_id: str, organs: list[str]) -> None:
        """Queue ``organs`` (those a label just saved for ``image_id`` contains)."""
        with self._cond:
            for organ in organs:
                self._pending[organ] = time.monotonic()
            self._cond.notify_all()
        if organs:
            logger.info("auto-train: label of %s queues %s", image_id, ", ".join(organs))

    def ensure_running(self) -> None:
        """Start the worker thread once (the server process only: the training subprocess never saves labels)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="arena-auto-train", daemon=True)
            self._thread.start()

    def status(self) -> dict[str, Any]:
        with self._cond:
            return {"pending": list(self._pending), "runs": list(self.runs[-5:]), "last_error": self.last_error}

    def _next(self) -> str:
        """Wait for an organ whose burst of saves has settled and no training running; take it off the queue."""
        while True:
            with self._cond:
                while not self._pending:
                    self._cond.wait()
                wait = max(self._pending.values()) + self.settle_s - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
            if self._busy():
                time.sleep(self.poll_s)
                continue
            with self._cond:
                if self._pending:
                    organ = next(iter(self._pending))
                    del self._pending[organ]
                    return organ

    def _loop(self) -> None:
        while True:
            try:
                organ = self._next()
            except Exception:  # the worker must outlive a failing busy() check: the queue is kept, tried again
                logger.exception("auto-train: cannot tell whether a training runs")
                time.sleep(self.poll_s)
                continue
            try:
                request = self._start(organ)
            except Exception as exc:  # e.g. the organ's labels were removed meanwhile: say so, keep serving
                self.last_error = f"{organ}: {getattr(exc, 'detail', exc)}"
                logger.warning("auto-train of %s not started: %s", organ, self.last_error)
                continue
            if request is None:  # a training started meanwhile: queue the organ again
                with self._cond:
                    self._pending.setdefault(organ, time.monotonic())
                time.sleep(self.poll_s)
                continue
            with self._cond:
                self.runs = [*self.runs[-19:], {"organ": organ, "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                                                 "request": request}]
            logger.info("auto-train: started %s", request)
