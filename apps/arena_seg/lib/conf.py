"""The app's ``--conf`` options, parsed and checked once at start (the README's table lists the same keys)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from arena_seg.errors import InputError
from arena_seg.training.config import FinetuneConfig

logger = logging.getLogger(__name__)

DEFAULT_EPOCHS = FinetuneConfig().epochs  #: one default for the CLI, the benchmarks and the server
#: epochs of a warm-started update while annotating: a few passes refine an adapter that already segments the organ
DEFAULT_AUTO_EPOCHS = 5

#: --conf keys and their meaning; the README's table is written from these
CONF_KEYS: dict[str, str] = {
    "foundation": "foundation network: default, fseft-swinunetr, monai-wholebody or a network folder",
    "checkpoint": "weights for fseft-swinunetr (fseft.pth) or monai-wholebody (bundle folder)",
    "labels": "organ(s) the arena trainer learns, comma-separated; ids 1..n in this order",
    "version": "version served by infer `arena` (default: latest)",
    "model_dir": "folder of the versions (default: <app>/model)",
    "device": "auto, cpu, cuda or cuda:N for inference (default auto)",
    "epochs": f"default max_epochs shown in the train options (default {DEFAULT_EPOCHS})",
    "max_upload_mb": "largest request body accepted, in MB; larger uploads get 413 (default 1024)",
    "cors_origins": "web origins allowed to call the API from a browser, comma-separated (default: none)",
    "auto_train": "true: each saved final label starts (or queues) a short warm-started update of its organs "
                  "(default false)",
    "auto_train_epochs": f"epochs of an auto-training update (default {DEFAULT_AUTO_EPOCHS})",
}
#: keys that monailabel itself reads from --conf
_FRAMEWORK_KEYS = {"server_mode", "auth_token"}


@dataclass(frozen=True)
class AppConf:
    """What the server was started with."""

    app_dir: Path
    foundation: str = "default"
    checkpoint: str | None = None
    labels: tuple[str, ...] = ()
    version: str | None = None
    model_dir: Path | None = None
    device: str = "auto"
    epochs: int = DEFAULT_EPOCHS
    max_upload_mb: float = 1024.0
    cors_origins: tuple[str, ...] = ()
    auto_train: bool = False
    auto_train_epochs: int = DEFAULT_AUTO_EPOCHS

    @property
    def arena_dir(self) -> Path:
        """Where versions, the ``latest`` link and train_stats.json live."""
        return (self.model_dir or self.app_dir / "model") / "arena"

    @property
    def organs(self) -> dict[str, int]:
        """{organ: id in the stored (normalised) label files}: 1..n in ``labels`` order."""
        return {name: i + 1 for i, name in enumerate(self.labels)}

    @classmethod
    def from_conf(cls, conf: dict[str, str], app_dir: str | Path) -> AppConf:
        """Parse ``--conf`` pairs; a bad value raises :class:`InputError` naming the key."""
        from arena_seg.models.registry import list_foundations

        unknown = sorted(set(conf) - set(CONF_KEYS) - _FRAMEWORK_KEYS)
        if unknown:
            logger.warning("ignoring unknown --conf keys %s; known: %s", unknown, ", ".join(CONF_KEYS))
        foundation = str(conf.get("foundation") or "default").strip()
        if foundation not in list_foundations() and not (Path(foundation) / "network.json").is_file() and not (
            Path(foundation) / "network" / "network.json"
        ).is_file():
            raise InputError(f"--conf foundation {foundation!r}: give one of {', '.join(list_foundations())} or a "
                             "folder holding network.json")
        labels = tuple(s.strip() for s in str(conf.get("labels") or "").split(",") if s.strip())
        if len(set(labels)) != len(labels):
            raise InputError(f"--conf labels {conf.get('labels')!r}: an organ is named twice")
        if len(labels) > 254:
            raise InputError("--conf labels: at most 254 organs")
        epochs = _positive_int(conf, "epochs", DEFAULT_EPOCHS)
        auto_epochs = _positive_int(conf, "auto_train_epochs", DEFAULT_AUTO_EPOCHS)
        auto_train = str(conf.get("auto_train") or "false").strip().lower()
        if auto_train not in ("true", "false", "1", "0", "yes", "no"):
            raise InputError(f"--conf auto_train {conf.get('auto_train')!r}: give true or false")
        try:
            max_upload_mb = float(conf.get("max_upload_mb") or 1024)
        except ValueError:
            max_upload_mb = -1.0
        if not max_upload_mb > 0:
            raise InputError(f"--conf max_upload_mb {conf.get('max_upload_mb')!r}: give a number of MB > 0")
        model_dir = conf.get("model_dir")
        origins = tuple(o.strip().rstrip("/") for o in str(conf.get("cors_origins") or "").split(",") if o.strip())
        for origin in origins:
            if origin == "*" or not origin.startswith(("http://", "https://")) or origin.count("/") != 2:
                raise InputError(f"--conf cors_origins {origin!r}: give origins such as http://localhost:3000 "
                                 "(scheme://host[:port], no wildcard, no path)")
        return cls(
            app_dir=Path(app_dir),
            foundation=foundation,
            checkpoint=conf.get("checkpoint") or None,
            labels=labels,
            version=(conf.get("version") or "").strip() or None,
            model_dir=Path(model_dir).expanduser().resolve() if model_dir else None,
            device=str(conf.get("device") or "auto"),
            epochs=epochs,
            max_upload_mb=max_upload_mb,
            cors_origins=origins,
            auto_train=auto_train in ("true", "1", "yes"),
            auto_train_epochs=auto_epochs,
        )


def _positive_int(conf: dict[str, str], key: str, default: int) -> int:
    try:
        value = int(conf.get(key) or default)
    except ValueError:
        raise InputError(f"--conf {key} {conf.get(key)!r}: give an integer ≥ 1") from None
    if value < 1:
        raise InputError(f"--conf {key} {value}: give an integer ≥ 1")
    return value


def norm_name(name: str) -> str:
    """Organ names match case-, space- and underscore-insensitively ("Inferior vena cava" = inferior_vena_cava)."""
    return "_".join(str(name).strip().lower().replace("-", " ").replace("_", " ").split())


def resolve_device(name: str | None, default: str = "auto") -> str:
    """A torch device string for a request's ``device`` (:func:`arena_seg.devices.resolve_device`); MONAI Label
    may also send a GPU's name, which means cuda."""
    import torch

    from arena_seg.devices import resolve_device as resolve

    name = (name or default or "auto").strip()
    if torch.cuda.is_available() and any(name.startswith(torch.cuda.get_device_name(i))
                                         for i in range(torch.cuda.device_count())):
        return "cuda"
    return str(resolve(name))


def device_choices() -> list[str]:
    """Choices offered in Slicer's options table (it sends the first one shown)."""
    import torch

    return ["cuda", "cpu"] if torch.cuda.is_available() else ["cpu"]
