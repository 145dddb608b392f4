"""External peers from HF peft (LoRA, AdaLoRA) on the fine-tuning engine's code path.

A peer is a :class:`arena_seg.training.methods.Method` the engine is handed (``finetune(..., method=peer)``): it
injects peft adapters into the very layers ARENA would wrap (peft ``target_modules`` = the exact module names our
``targets`` regexes select), freezes the rest and keeps the head trainable, so data, loss, optimizer, schedule and
evaluation are the engine's. AdaLoRA's ``update_and_allocate`` runs after every optimizer step, and its orthogonal
regulariser (which peft adds only to a ``.loss`` attribute our networks do not have) is added to the gradients
just before each step, which is the same update.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from arena_seg.adapters.layers import WRAPPERS
from arena_seg.training.methods import Method

PEERS = ("peft-lora", "peft-adalora")
ADAPTER_NAME = "default"
#: layer types each peer can adapt (peft 0.21: LoRA has no ConvTranspose3d, AdaLoRA only Linear and Conv2d)
SUPPORTED = {"peft-lora": (nn.Linear, nn.Conv3d), "peft-adalora": (nn.Linear,)}


class UnsupportedLayersError(ValueError):
    """The layers ARENA adapts include types the peft peer cannot wrap."""


def peft_available() -> bool:
    try:
        import peft  # noqa: F401
    except ImportError:
        return False
    return True


def peft_version() -> str | None:
    try:
        import peft
    except ImportError:
        return None
    return str(peft.__version__)


def target_names(model: nn.Module, targets: Sequence[str]) -> list[str]:
    """Qualified names of the layers ``adapters.inject`` would wrap for ``targets`` (same rule, same order)."""
    return [name for name, module in model.named_modules()
            if name and any(re.search(p, name) for p in targets) and isinstance(module, tuple(WRAPPERS))
            and getattr(module, "groups", 1) == 1]


class PeerMethod(Method):
    """peft ``kind`` (``peft-lora`` | ``peft-adalora``) at ``rank``; ``total_steps`` (optimizer steps of the run)
    sets AdaLoRA's budget schedule. After ``prepare``, ``layers`` names the adapted layers and ``tuner`` holds
    peft's AdaLoRA model."""

    def __init__(self, kind: str, rank: int, total_steps: int) -> None:
        if kind not in PEERS:
            raise ValueError(f"unknown peer {kind!r}; choose one of {', '.join(PEERS)}")
        if not peft_available():
            raise ImportError("the peft peers need HF peft: pip install -r requirements-bench.txt")
        self.name, self.kind, self.rank, self.total_steps = kind, kind, rank, total_steps
        self.layers: list[str] = []
        self.tuner: Any = None
        self.step = 0

    def prepare(self, model: nn.Module, head: str, targets: Sequence[str]) -> list[str]:
        from peft import AdaLoraModel, LoraConfig, inject_adapter_in_model

        names = target_names(model, targets)
        if not names:
            raise ValueError(f"no Linear/Conv3d/ConvTranspose3d module matches targets {list(targets)}")
        odd = sorted({type(model.get_submodule(n)).__name__ for n in names
                      if not isinstance(model.get_submodule(n), SUPPORTED[self.kind])})
        if odd:
            raise UnsupportedLayersError(f"{self.kind} cannot adapt {', '.join(odd)} layers, which ARENA adapts here")
        if self.kind == "peft-lora":
            config = LoraConfig(r=self.rank, lora_alpha=float(self.rank), lora_dropout=0.0, target_modules=names,
                                bias="none")
            inject_adapter_in_model(config, model, adapter_name=ADAPTER_NAME)
        else:
            self.tuner = AdaLoraModel(model, _adalora_config(names, self.rank, self.total_steps), ADAPTER_NAME)
        for pname, param in model.named_parameters():  # peft froze all but its factors; the head trains too
            param.requires_grad_(".lora_" in pname or pname.startswith(f"{head}."))
        self.layers = names
        return names

    def before_step(self, model: nn.Module, optimizers: list[torch.optim.Optimizer]) -> None:
        if self.tuner is not None:
            _orthogonal_regularisation(self.tuner.model, self.tuner.peft_config[ADAPTER_NAME].orth_reg_weight)

    def after_step(self, model: nn.Module, optimizers: list[torch.optim.Optimizer], step: int, total: int) -> None:
        if self.tuner is not None:
            # after optimizer.step and before the next zero_grad, as peft's docs require
            self.tuner.update_and_allocate(self.step)
            self.step += 1

    def ranks(self, model: nn.Module) -> dict[str, int]:
        return self.effective_ranks(model)

    def effective_ranks(self, model: nn.Module) -> dict[str, int]:
        """Non-zero singular values per layer (AdaLoRA), or the fixed rank (LoRA)."""
        out = {}
        for name in self.layers:
            layer = model.get_submodule(name)
            if self.kind == "peft-adalora":
                out[name] = int(torch.count_nonzero(layer.lora_E[ADAPTER_NAME]))
            else:
                out[name] = int(layer.r[ADAPTER_NAME])
        return out

    def effective_parameters(self, model: nn.Module, trainable: int) -> int:
        """``trainable`` less the factors of AdaLoRA's masked ranks (A row + E entry + B column each)."""
        if self.kind != "peft-adalora":
            return trainable
        pruned = 0
        for name, rank in self.effective_ranks(model).items():
            layer = model.get_submodule(name)
            a, b = layer.lora_A[ADAPTER_NAME], layer.lora_B[ADAPTER_NAME]
            pruned += (a.shape[0] - rank) * (a.shape[1] + b.shape[0] + 1)
        return trainable - pruned


def _adalora_config(names: list[str], rank: int, total_steps: int):
    from peft import AdaLoraConfig

    total = max(2, int(total_steps))
    # warm up for the first fifth, prune to half the initial rank, fine-tune at the final ranks for the last fifth
    tinit, tfinal = total // 5, total // 5
    return AdaLoraConfig(init_r=rank, target_r=max(1, rank // 2), lora_alpha=rank, lora_dropout=0.0,
                         target_modules=names, total_step=total, tinit=tinit, tfinal=tfinal, deltaT=1)


def _orthogonal_regularisation(model: nn.Module, weight: float) -> None:
    """Accumulate the gradient of peft's AdaLoRA orthogonality penalty (mean ||P P^T - I||_F) into ``.grad``."""
    if weight <= 0:
        return
    with torch.enable_grad():
        terms = []
        for name, p in model.named_parameters():
            if p.requires_grad and p.numel() and ("lora_A" in name or "lora_B" in name):
                cov = p @ p.T if "lora_A" in name else p.T @ p
                eye = torch.eye(cov.shape[0], device=cov.device, dtype=cov.dtype)
                terms.append(torch.linalg.matrix_norm(cov - eye))
        if terms:
            (weight * torch.stack(terms).mean()).backward()
