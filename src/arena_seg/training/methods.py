"""Fine-tuning methods as objects the engine calls: which parameters train, how they are grouped into optimizers,
and what happens around each optimizer step. ARENA, LoRA, full, linear probe and BitFit live here; the benchmark's
peft peers (``arena_seg.bench.peers``) are further subclasses of :class:`Method`."""

from __future__ import annotations

import dataclasses
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from torch import nn

from arena_seg import adapters
from arena_seg.errors import InputError

METHODS = ("arena", "lora", "full", "linear", "bitfit")


class Method(ABC):
    """A fine-tuning method; the base class trains what ``prepare`` left trainable with one AdamW."""

    name = "method"

    @abstractmethod
    def prepare(self, model: nn.Module, head: str, targets: Sequence[str]) -> list[str]:
        """Set ``model`` up in place (the ``head`` module always trains); returns the adapted layers' names."""

    def param_groups(self, model: nn.Module, lr: float, weight_decay: float) -> list[dict]:
        """Optimizer groups of the trainable parameters (each with a ``name``)."""
        params = [p for p in model.parameters() if p.requires_grad]
        return [{"params": params, "lr": lr, "weight_decay": weight_decay, "name": "weights"}]

    def optimizers(self, model: nn.Module, lr: float, weight_decay: float) -> list[torch.optim.Optimizer]:
        """The optimizers stepping every trainable parameter (the engine schedules each one's lr)."""
        return [torch.optim.AdamW(self.param_groups(model, lr, weight_decay))]

    def before_step(self, model: nn.Module, optimizers: list[torch.optim.Optimizer]) -> None:
        """Called after the backward pass, before the optimizers step (e.g. an extra gradient term)."""
        return None  # most methods add nothing here

    def after_step(self, model: nn.Module, optimizers: list[torch.optim.Optimizer], step: int, total: int) -> None:
        """Called after every optimizer step; ``step`` counts from 0 up to ``total`` - 1."""
        return None  # only methods with a proximal step act here

    def ranks(self, model: nn.Module) -> dict[str, int]:
        """Effective rank per adapted layer (empty for methods without adapters)."""
        return {}

    def finish(self, model: nn.Module) -> dict[str, int]:
        """End of training (ARENA prunes zero-gate ranks for real); returns the final ranks."""
        return self.ranks(model)


class Arena(Method):
    """ARENA (and fixed-rank LoRA: the same layers and initialisation with ``λ = 0``) from an ``ArenaConfig``."""

    def __init__(self, config: adapters.ArenaConfig, name: str = "arena") -> None:
        self.config = config
        self.name = name

    def prepare(self, model: nn.Module, head: str, targets: Sequence[str]) -> list[str]:
        config = dataclasses.replace(self.config, targets=tuple(targets), trainable=(rf"^{re.escape(head)}$",))
        return adapters.inject(model, config)

    def param_groups(self, model: nn.Module, lr: float, weight_decay: float) -> list[dict]:
        """Weights, and the gates in their own group (lr × ``gate_lr_mult``, no weight decay: l1 regularises them)."""
        gates = [layer.gate for layer in adapters.arena_layers(model).values() if layer.gate.requires_grad]
        ids = {id(g) for g in gates}
        others = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
        groups = [{"params": others, "lr": lr, "weight_decay": weight_decay, "name": "weights"}]
        if gates:
            groups.append({"params": gates, "lr": lr * self.config.gate_lr_mult, "weight_decay": 0.0,
                           "name": "gates"})
        return groups

    def optimizers(self, model: nn.Module, lr: float, weight_decay: float) -> list[torch.optim.Optimizer]:
        groups = self.param_groups(model, lr, weight_decay)
        if self.config.gate_optimizer == "sgd" and len(groups) == 2:
            # plain SGD on the gates: a step proportional to the gradient, so λ is in the loss's units
            gates = groups.pop()
            return [torch.optim.AdamW(groups), torch.optim.SGD([gates], lr=gates["lr"], momentum=0.0)]
        return [torch.optim.AdamW(groups)]

    def after_step(self, model: nn.Module, optimizers: list[torch.optim.Optimizer], step: int, total: int) -> None:
        # after the gradient step, so each step is a proper proximal-gradient update of the l1 objective
        for optimizer in optimizers:
            group = next((g for g in optimizer.param_groups if g.get("name") == "gates"), None)
            if group is not None:
                adapters.proximal_step(model, lr=group["lr"], optimizer=optimizer, progress=step / max(1, total))

    def ranks(self, model: nn.Module) -> dict[str, int]:
        return adapters.effective_ranks(model)

    def finish(self, model: nn.Module) -> dict[str, int]:
        return adapters.prune(model)


class Selector(Method):
    """Full fine-tuning, linear probe or BitFit: a choice of trainable parameters, no adapters."""

    def __init__(self, name: str) -> None:
        self.name = name

    def prepare(self, model: nn.Module, head: str, targets: Sequence[str]) -> list[str]:
        head_pattern = rf"^{re.escape(head)}$"
        if self.name == "full":
            adapters.full_finetune(model)
        elif self.name == "linear":
            adapters.linear_probe(model, (head_pattern,))
        else:
            adapters.bitfit(model, trainable=(head_pattern,))
        return []


def build(method: str, arena: adapters.ArenaConfig | None = None) -> Method:
    """The method called ``method`` (one of :data:`METHODS`); ``arena`` configures ARENA (LoRA: its λ set to 0)."""
    if method not in METHODS:
        raise InputError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    arena = arena or adapters.ArenaConfig()
    if method == "arena":
        return Arena(arena)
    if method == "lora":
        # fixed-rank LoRA: ARENA's layers and initialisation, none of its gate penalty options
        plain = dataclasses.replace(arena, lam=0.0, prox="lr", gate_optimizer="adamw", lam_warmup=0.0, lam_ramp=0.0,
                                    min_rank=0, refit=0.0)
        return Arena(plain, name="lora")
    return Selector(method)
