"""The few-shot fine-tuning engine shared by the CLI, the MONAI Label trainer and the benchmarks."""

from __future__ import annotations

import copy
import math
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from monai.data import CacheDataset, DataLoader, MetaTensor, list_data_collate
from monai.losses import DiceCELoss
from monai.utils import set_determinism
from torch import nn

from arena_seg import adapters
from arena_seg.data.transforms import train_transforms
from arena_seg.models.registry import FoundationSpec, replace_head
from arena_seg.training import methods
from arena_seg.training.config import FinetuneConfig
from arena_seg.training.evaluate import evaluate
from arena_seg.training.schedule import warmup_cosine

Progress = Callable[[dict], None]


@dataclass
class FinetuneResult:
    """What a run produced: the adapted (pruned, unmerged) network and everything the manifest records."""

    model: nn.Module
    labels: dict[str, int]  # organ -> output channel
    adapted_layers: list[str]
    ranks: dict[str, int]
    params_start: int
    params_end: int
    history: list[dict] = field(default_factory=list)
    best_metric: float | None = None
    epochs_run: int = 0
    stopped_early: bool = False
    seconds: float = 0.0
    peak_memory_mb: float = 0.0
    device: str = "cpu"


def pick_device(name: str = "auto") -> torch.device:
    """The training device (:func:`arena_seg.devices.resolve_device`: an absent GPU refused with one line)."""
    from arena_seg.devices import resolve_device

    return resolve_device(name)


def finetune(
    model: nn.Module,
    spec: FoundationSpec,
    organs: dict[str, int],
    train: list[dict],
    val: list[dict] | None = None,
    config: FinetuneConfig | None = None,
    progress: Progress | None = None,
    log_dir: str | None = None,
    should_stop: Callable[[], bool] | None = None,
    method: methods.Method | None = None,
) -> FinetuneResult:
    """Fine-tune ``model`` (a foundation network, modified in place) to segment ``organs``.

    ``organs`` maps each organ name to its id in the label files; output channel i+1 is the i-th organ. A
    ``train``/``val`` item is {"image": path, "label": path}. Organs the foundation network knows start from
    its head row. ``progress`` receives a dict after every epoch. ``method`` replaces the one ``config.method``
    names (``methods.build``), e.g. a benchmark peer; the engine calls it to set up, optimise and finish.
    """
    config = config or FinetuneConfig()
    if not train:
        raise ValueError("no training volumes")
    set_determinism(config.seed)
    torch.manual_seed(config.seed)
    device = pick_device(config.device)
    amp = config.amp and device.type == "cuda"
    names = list(organs)
    label_map = {file_id: i + 1 for i, file_id in enumerate(organs.values())}

    replace_head(model, spec.head, [spec.background_channel] + [spec.labels.get(name) for name in names])
    targets = tuple(config.targets) if config.targets else tuple(spec.targets)
    method = method or methods.build(config.method, config.arena)
    adapted = method.prepare(model, spec.head, targets)
    params_start = adapters.trainable_parameters(model)
    model.to(device)

    transform = train_transforms(spec.preprocessing, label_map, config.num_samples, config.sampler,
                                 augment=config.augment)
    dataset = CacheDataset(train, transform=transform, cache_rate=1.0, num_workers=0, progress=False)
    loader = DataLoader(dataset, batch_size=1, shuffle=True, num_workers=0, collate_fn=list_data_collate,
                        generator=torch.Generator().manual_seed(config.seed))
    steps = _Steps(model, method, method.optimizers(model, config.lr, config.weight_decay), device, amp,
                   config.epochs * len(loader), config.warmup_epochs * len(loader))
    writer = _writer(log_dir)

    result = FinetuneResult(model=model, labels={n: i + 1 for i, n in enumerate(names)}, adapted_layers=adapted,
                            ranks={}, params_start=params_start, params_end=params_start, device=str(device))
    best_state, best, stale = None, -math.inf, 0
    start = time.perf_counter()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for epoch in range(1, config.epochs + 1):
        loss = steps.epoch(loader)
        record = {"epoch": epoch, "loss": loss, "lr": steps.optimizers[0].param_groups[0]["lr"],
                  "seconds": time.perf_counter() - start}
        ranks = method.ranks(model) if adapted else {}
        if ranks:
            record["mean_rank"] = float(np.mean(list(ranks.values())))
        if val and (epoch % config.val_every == 0 or epoch == config.epochs):
            dice = evaluate(model, spec.preprocessing, val, label_map, names, device, amp)
            record["val_dice"] = dice
            score = float(np.nanmean(list(dice.values())))
            record["val_mean_dice"] = score
            if score > best:
                best, stale = score, 0
                best_state = {k: v.detach().clone() for k, v in _trainable_state(model).items()}
                result.best_metric = best
            else:
                stale += 1
        result.history.append(record)
        result.epochs_run = epoch
        _log(writer, record, ranks)
        if progress:
            progress({**record, "total_epochs": config.epochs, "ranks": ranks, "best_metric": result.best_metric})
        if stale >= config.patience or (should_stop and should_stop()):
            result.stopped_early = True
            break
    if best_state is not None:
        # gates of the best epoch may be non-zero where later ones were pruned: restore them all together
        _load_trainable_state(model, best_state)
    if adapted:
        result.ranks = method.finish(model)
    result.params_end = adapters.trainable_parameters(model)
    result.seconds = time.perf_counter() - start
    result.peak_memory_mb = _peak_memory_mb(device)
    if writer:
        writer.close()
    model.eval()
    return result


class _Steps:
    """The optimisation steps of a run: each batch's loss, backward pass, the method's hooks around the
    optimizers' steps, and the lr schedules (warm-up then cosine, one per optimizer)."""

    def __init__(self, model: nn.Module, method: methods.Method, optimizers: list[torch.optim.Optimizer],
                 device: torch.device, amp: bool, total: int, warmup: int) -> None:
        self.model, self.method, self.optimizers, self.device, self.amp = model, method, optimizers, device, amp
        self.total, self.done = total, 0
        self.schedulers = [warmup_cosine(opt, total, warmup) for opt in optimizers]
        self.loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, squared_pred=False, smooth_nr=1e-5,
                                  smooth_dr=1e-5)
        self.scaler = torch.amp.GradScaler("cuda", enabled=amp)

    def epoch(self, loader: DataLoader) -> float:
        """One pass over ``loader``; the mean loss."""
        self.model.train()
        losses = []
        for batch in loader:
            # plain tensors: MetaTensor's per-op metadata bookkeeping buys nothing inside the network
            image, label = _plain(batch["image"]).to(self.device), _plain(batch["label"]).to(self.device)
            for opt in self.optimizers:
                opt.zero_grad(set_to_none=True)
            with torch.autocast(device_type=self.device.type, enabled=self.amp):
                loss = self.loss_fn(self.model(image), label)
            self.scaler.scale(loss).backward()
            self.method.before_step(self.model, self.optimizers)
            for opt in self.optimizers:
                self.scaler.step(opt)
            self.scaler.update()
            self.method.after_step(self.model, self.optimizers, self.done, self.total)
            for scheduler in self.schedulers:
                scheduler.step()
            self.done += 1
            losses.append(float(loss.detach()))
        return float(np.mean(losses))


def merged_copy(model: nn.Module) -> nn.Module:
    """A plain network with every adapter folded in; ``model`` itself keeps its adapters."""
    return adapters.merge(copy.deepcopy(model).cpu())


def _plain(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.as_tensor() if isinstance(tensor, MetaTensor) else tensor


def _trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.named_parameters() if v.requires_grad}


def _load_trainable_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    with torch.no_grad():
        for key, value in state.items():
            params[key].copy_(value)


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS (KiB on Linux)


def _writer(log_dir: str | None):
    if not log_dir:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir)


def _log(writer, record: dict, ranks: dict[str, int]) -> None:
    if writer is None:
        return
    step = record["epoch"]
    writer.add_scalar("train/loss", record["loss"], step)
    writer.add_scalar("train/lr", record["lr"], step)
    for organ, dice in record.get("val_dice", {}).items():
        writer.add_scalar(f"val/dice/{organ}", dice, step)
    for layer, rank in ranks.items():
        writer.add_scalar(f"rank/{layer}", rank, step)
