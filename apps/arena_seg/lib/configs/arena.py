"""Model config `arena`: the adapted model (infer), its few-shot trainer and the uncertainty strategy."""

from __future__ import annotations

from typing import Any

from monailabel.interfaces.config import TaskConfig
from monailabel.interfaces.tasks.infer_v2 import InferTask
from monailabel.interfaces.tasks.strategy import Strategy
from monailabel.interfaces.tasks.train import TrainTask

from lib.infers.arena import ArenaInfer
from lib.strategies.uncertainty import Uncertainty
from lib.trainers.arena import ArenaTrain


class Arena(TaskConfig):
    def init(self, name: str, model_dir: str, conf: dict[str, str], planner: Any, **kwargs: Any) -> None:
        super().init(name, model_dir, conf, planner, **kwargs)
        self.models = kwargs["models"]
        self.labels = self.models.conf.organs

    def infer(self) -> InferTask:
        organs = ", ".join(self.models.conf.labels) or "no organs configured"
        return ArenaInfer(self.models, f"ARENA-adapted {self.models.conf.foundation} for {organs}")

    def trainer(self) -> TrainTask:
        return ArenaTrain(self.models.conf, self.models.versions, self.models.registry)

    def strategy(self) -> dict[str, Strategy]:
        return {"uncertainty": Uncertainty(self.models)}
