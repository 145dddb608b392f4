"""Building blocks of the cost benchmark: networks with random weights, one training step as the engine takes it,
and timing that waits for the GPU."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from monai.losses import DiceCELoss
from torch import nn

from arena_seg import adapters
from arena_seg.adapters import ArenaConfig
from arena_seg.training import methods

from .peers import PeerMethod

#: short names of the networks the cost benchmark knows -> registry spec
NETWORKS = {"default": "default", "swinunetr48": "fseft-swinunetr"}
TRAIN_CONFIGS = ("full", "lora", "arena", "peft-lora")


@dataclass
class NetworkDef:
    """What the cost benchmark needs of a network: its JSON arch, head and default adapter targets."""

    name: str
    arch: dict
    head: str
    targets: tuple[str, ...]
    weights: Path | None = None  # a network folder's weights (None: random)

    def build(self, seed: int = 0) -> nn.Module:
        from arena_seg.models.registry import build_network, load_network

        if self.weights is not None:
            return load_network(self.weights)[0]
        torch.manual_seed(seed)
        return build_network(self.arch)

    def to_dict(self) -> dict:
        return {"name": self.name, "arch": self.arch, "head": self.head, "targets": list(self.targets),
                "weights": str(self.weights) if self.weights else None}

    @classmethod
    def from_dict(cls, d: dict) -> NetworkDef:
        return cls(d["name"], d["arch"], d["head"], tuple(d["targets"]), Path(d["weights"]) if d["weights"] else None)


def network_def(ref: str) -> NetworkDef:
    """``default``, ``swinunetr48`` (or any registry name): random weights; a network folder: its own weights."""
    from arena_seg.inference.loading import network_dir
    from arena_seg.models.registry import get_spec, list_foundations

    name = NETWORKS.get(ref, ref)
    if name in list_foundations():
        spec = get_spec(name)
        return NetworkDef(ref, spec.arch, spec.head, tuple(spec.targets))
    folder = network_dir(ref)
    if folder is None:
        raise ValueError(f"unknown network {ref!r}: give {', '.join(NETWORKS)}, a registry name or a network folder")
    from arena_seg.models.registry import load_network

    _, spec = load_network(folder)
    return NetworkDef(Path(ref).name, spec.arch, spec.head, tuple(spec.targets), folder)


def prepare(net: NetworkDef, config: str, rank: int, model: nn.Module | None = None) -> nn.Module:
    """A model set up for training config ``full`` | ``lora`` (ARENA code, λ = 0) | ``arena`` | ``peft-lora``."""
    model = model if model is not None else net.build()
    method = PeerMethod("peft-lora", rank, total_steps=1) if config == "peft-lora" else _method(config, rank)
    method.prepare(model, net.head, net.targets)
    return model


def _method(config: str, rank: int) -> methods.Method:
    # the speed benchmark's own settings (lr 2e-3, λ 1, gates at the weights' lr), fixed so timings stay comparable
    return methods.build(config, ArenaConfig(rank=rank, lam=1.0, gate_lr_mult=1.0))


@dataclass
class Trainer:
    """One model with its optimizer, stepping exactly like ``engine.finetune`` (AdamW, DiceCE, proximal step)."""

    model: nn.Module
    device: torch.device
    amp: bool
    optimizer: torch.optim.Optimizer = field(init=False)

    def __post_init__(self) -> None:
        self.model.to(self.device).train()
        # ARENA's grouping applies to any model (no gates: one group), so every config steps the same optimizer
        self.method = _method("arena", 1)
        self.optimizers = self.method.optimizers(self.model, 2e-3, 1e-4)
        self.optimizer = self.optimizers[0]
        self.loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)

    def step(self, image: torch.Tensor, label: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=self.device.type, enabled=self.amp):
            loss = self.loss_fn(self.model(image), label)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.method.after_step(self.model, self.optimizers, 0, 1)


def batch(out_channels: int, size: tuple[int, int, int], n: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """A random image batch and a random label map of ``out_channels`` classes, shape (n, 1, *size)."""
    gen = torch.Generator().manual_seed(0)
    image = torch.randn((n, 1, *size), generator=gen)
    label = torch.randint(0, out_channels, (n, 1, *size), generator=gen)
    return image.to(device), label.to(device)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def inference_models(net: NetworkDef, rank: int, device: torch.device) -> dict[str, nn.Module]:
    """``base`` (plain), ``unmerged`` (ARENA adapters active, random non-zero updates) and ``merged`` (folded)."""
    base = net.build().eval()
    unmerged = prepare(net, "arena", rank, copy.deepcopy(base))
    with torch.no_grad():
        for layer in adapters.arena_layers(unmerged).values():
            torch.nn.init.normal_(layer.lora_B.weight, std=0.02)  # a real update, so merging changes weights
    merged = adapters.merge(copy.deepcopy(unmerged))
    return {name: m.to(device).eval() for name, m in (("base", base), ("merged", merged), ("unmerged", unmerged))}


def forward_fn(model: nn.Module, x: torch.Tensor, amp: bool) -> Callable[[], object]:
    def run() -> torch.Tensor:
        with torch.no_grad(), torch.autocast(device_type=x.device.type, enabled=amp):
            return model(x)

    return run


def no_grad_sliding_window(model: nn.Module, volume: torch.Tensor, roi: tuple[int, int, int], sw_batch: int,
                           amp: bool) -> Callable[[], object]:
    from monai.inferers import sliding_window_inference

    def run() -> torch.Tensor:
        with torch.no_grad(), torch.autocast(device_type=volume.device.type, enabled=amp):
            return sliding_window_inference(volume, roi, sw_batch, model, overlap=0.25, mode="gaussian")

    return run
