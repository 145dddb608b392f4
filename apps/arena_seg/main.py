"""arena-seg's MONAI Label app: `monailabel start_server --app apps/arena_seg --studies DIR [--conf k v ...]`.

Models (lib/configs): `foundation` (infer) and `arena` (infer, trainer, strategy `uncertainty`); strategies
`random` and `first` as well. The app checks requests that stock MONAI Label would accept and fail on later
(unknown model, bad image id, bad label, bad train options) and answers them 4xx with a message.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import lib.configs.arena
import lib.configs.foundation
from fastapi import HTTPException
from lib.auto_train import AutoTrainer
from lib.batch import ArenaBatchInfer, check_batch_request
from lib.compat import install as install_compat
from lib.compat.endpoints import request_upload
from lib.conf import AppConf
from lib.datastore import ArenaDatastore
from lib.dicomweb import dicomweb_datastore
from lib.errors import http_errors
from lib.models import ModelCache
from lib.names import check_tag
from lib.requests import resolve_image
from lib.strategies.random_sample import RandomSample
from lib.versions import VersionStore
from monailabel.config import settings
from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.config import TaskConfig
from monailabel.interfaces.datastore import Datastore, DefaultLabelTag
from monailabel.interfaces.tasks.infer_v2 import InferTask
from monailabel.interfaces.tasks.strategy import Strategy
from monailabel.interfaces.tasks.train import TrainTask
from monailabel.tasks.activelearning.first import First
from monailabel.utils.async_tasks.task import AsyncTask

import arena_seg
from arena_seg.library import OrganLibrary

logger = logging.getLogger(__name__)


class ArenaSegApp(MONAILabelApp):
    """Foundation segmentation plus few-shot ARENA fine-tuning with versioned models."""

    def __init__(self, app_dir: str, studies: str, conf: dict[str, str]) -> None:
        self.arena_conf = AppConf.from_conf(conf or {}, app_dir)
        self.versions = VersionStore(self.arena_conf.arena_dir)
        self.models = ModelCache(self.arena_conf, self.versions)
        self.auto_trainer = AutoTrainer(self._start_auto_train, _training_busy) if self.arena_conf.auto_train else None
        self.configs: dict[str, TaskConfig] = {"foundation": lib.configs.foundation.Foundation(),
                                               "arena": lib.configs.arena.Arena()}
        for name, config in self.configs.items():
            config.init(name, str(self.arena_conf.arena_dir.parent), conf or {}, None, models=self.models)
        super().__init__(app_dir=app_dir, studies=studies, conf=conf or {}, name="arena-seg",
                         description="CT organ segmentation with a foundation network and few-shot ARENA adaptation",
                         version=arena_seg.__version__)

    def init_datastore(self) -> Datastore:
        if self.studies.startswith(("http://", "https://")):
            self.studies = self.studies.strip().rstrip("/")
            if settings.MONAI_LABEL_DATASTORE.lower() in ("xnat", "dsa"):
                return super().init_remote_datastore()
            store = dicomweb_datastore(self.studies, self.models.registry)
        else:
            store = ArenaDatastore(self.studies, extensions=settings.MONAI_LABEL_DATASTORE_FILE_EXT,
                                   auto_reload=settings.MONAI_LABEL_DATASTORE_AUTO_RELOAD,
                                   read_only=settings.MONAI_LABEL_DATASTORE_READ_ONLY, registry=self.models.registry)
        if self.auto_trainer is not None:
            store.label_listener = self.auto_trainer.label_saved
        return store

    def init_infers(self) -> dict[str, InferTask]:
        return {name: config.infer() for name, config in self.configs.items()}

    def init_trainers(self) -> dict[str, TrainTask]:
        return {name: t for name, config in self.configs.items() if (t := config.trainer())}

    def init_strategies(self) -> dict[str, Strategy]:
        return {"random": RandomSample(), "first": First(), **self.configs["arena"].strategy()}

    def init_batch_infer(self) -> ArenaBatchInfer:
        return ArenaBatchInfer(self.models, self.arena_conf.arena_dir.parent / "batch")

    def on_init_complete(self) -> None:
        super().on_init_complete()
        install_compat(check_train=self.check_train, check_batch=self.check_batch_infer,  # the server process only
                       max_upload_mb=self.arena_conf.max_upload_mb, cors_origins=self.arena_conf.cors_origins,
                       dicomweb=self.studies.startswith(("http://", "https://")))
        self.versions.remove_stale_stages()  # no training runs yet in a server that just started
        if self.auto_trainer is not None:
            self.auto_trainer.ensure_running()

    def info(self) -> dict[str, Any]:
        info = super().info()
        if self.auto_trainer is not None:
            info["auto_train"] = {"epochs": self.arena_conf.auto_train_epochs, **self.auto_trainer.status()}
        return info

    def on_save_label(self, image_id: str, label_id: str) -> dict[str, Any]:
        """The save's answer says what auto-training queued (the datastore told the auto-trainer already)."""
        super().on_save_label(image_id, label_id)
        return {"auto_train": self.auto_trainer.status()} if self.auto_trainer is not None else {}

    def _start_auto_train(self, organ: str) -> dict[str, Any] | None:
        """Submit an auto-training run of ``organ`` (checked as a user's Train is); None when a training runs."""
        version = OrganLibrary(self.versions.root).resolve().get(organ)
        warm = version is not None and (version.folder / "adapter.safetensors").is_file()
        request = {"organs": organ, "warm_start": warm, "auto_train": True,
                   "max_epochs": self.arena_conf.auto_train_epochs if warm else self.arena_conf.epochs}
        self.check_train("arena", request)
        task, _ = AsyncTask.run("train", request={"model": "arena"}, params=dict(request), enqueue=False)
        return request if task else None

    def infer(self, request: dict[str, Any], datastore: Datastore | None = None) -> dict[str, Any]:
        """Stock infer, with 404 for an unknown model or image and the image resolved through the datastore."""
        model = request.get("model")
        if model not in self._infers:
            raise HTTPException(status_code=404, detail=f"unknown model {model!r}; models: {', '.join(self._infers)}")
        datastore = datastore or self.datastore()
        request = copy.deepcopy(request)
        image_id, save = request.get("image"), False
        if isinstance(image_id, str):
            path, is_id = resolve_image(image_id, datastore, getattr(self._sessions, "store_path", None))
            save, request["image"], request["save_label"] = bool(request.get("save_label")) and is_id, path, False
        if isinstance(request.get("label"), str) and not request_upload(request["label"]):
            request.pop("label")  # a path named in params, not a file this request uploaded
        tag = check_tag(request.get("label_tag") or DefaultLabelTag.ORIGINAL.value) if save else None
        with http_errors():
            result = super().infer(request, datastore)
            if save and result.get("file"):
                result["label"] = datastore.save_label(image_id, result["file"], tag,
                                                       {"model": model, "params": result.get("params")})
        return result

    def check_train(self, model: str, params: dict[str, Any]) -> None:
        """Answer 4xx now for what the training subprocess would fail on later."""
        if model not in self._trainers:
            raise HTTPException(status_code=404, detail=f"unknown trainer {model!r}; trainers: "
                                                        f"{', '.join(self._trainers) or 'none'}")
        with http_errors():
            self._trainers[model].check({"model": model, **params}, self.datastore())

    def check_batch_infer(self, model: str, params: dict[str, Any]) -> None:
        """404 for an unknown model, 409 for `arena` before its first good training run."""
        if model not in self._infers:
            raise HTTPException(status_code=404, detail=f"unknown model {model!r}; models: {', '.join(self._infers)}")
        check_batch_request(params, self.datastore())
        if model == "arena":
            with http_errors():
                self.versions.resolve(params.get("version") or self.arena_conf.version)

    def batch_infer(self, request: dict[str, Any], datastore: Datastore | None = None) -> dict[str, Any]:
        """Batch infer on arena-seg's runner (lib/batch.py); checked first, errors as 4xx when run in-process."""
        self.check_batch_infer(request.get("model", ""), request)
        with http_errors():
            return super().batch_infer(request, datastore)

    def train(self, request: dict[str, Any]) -> Any:
        self.check_train(request.get("model", ""), {k: v for k, v in request.items() if k != "model"})
        return super().train(request)

    def next_sample(self, request: dict[str, Any]) -> dict[str, Any]:
        strategy = request.get("strategy") or "random"
        if strategy not in self._strategies:
            raise HTTPException(status_code=404, detail=f"unknown strategy {strategy!r}; strategies: "
                                                        f"{', '.join(self._strategies)}")
        with http_errors():
            return super().next_sample(request)


def _training_busy() -> bool:
    """Whether a training task runs or waits in MONAI Label's queue (the auto-trainer then waits too)."""
    from monailabel.utils.async_tasks.utils import processes, tasks

    return bool(processes("train")) or any(t.get("status") == "SUBMITTED" for t in tasks("train"))
