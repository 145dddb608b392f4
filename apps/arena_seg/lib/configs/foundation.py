"""Model config `foundation`: inference only (the foundation network is never changed by training)."""

from __future__ import annotations

from typing import Any

from monailabel.interfaces.config import TaskConfig
from monailabel.interfaces.tasks.infer_v2 import InferTask

from lib.infers.foundation import FoundationInfer


class Foundation(TaskConfig):
    def init(self, name: str, model_dir: str, conf: dict[str, str], planner: Any, **kwargs: Any) -> None:
        super().init(name, model_dir, conf, planner, **kwargs)
        self.models = kwargs["models"]

    def infer(self) -> InferTask:
        ref = self.models.conf.foundation
        return FoundationInfer(self.models, f"Foundation network {ref}: the organs it was pretrained for")

    def trainer(self) -> None:
        return None
