"""Whole-network operations: inject, merge, prune, rank and parameter accounting."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator

import torch
from torch import Tensor, nn

from .config import ArenaConfig
from .layers import ArenaLayer, wrapper_for

ADAPTER_PARTS = ("lora_A", "lora_B", "gate")


def arena_layers(model: nn.Module) -> dict[str, ArenaLayer]:
    """Wrapped layers by qualified name, in module order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, ArenaLayer)}


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def _search_any(patterns: Iterable[str], name: str) -> bool:
    return any(re.search(p, name) for p in patterns)


def plain_name(name: str, wrappers: Iterable[str]) -> str | None:
    """Map a parameter/buffer name of an injected model to the plain model's name.

    ``"x.qkv.base_layer.weight"`` -> ``"x.qkv.weight"``; adapter tensors (``x.qkv.lora_A.weight``,
    ``x.qkv.gate``) -> ``None``; everything else unchanged.
    """
    for w in wrappers:
        prefix = f"{w}." if w else ""
        if name.startswith(prefix):
            rest = name[len(prefix) :]
            if rest.startswith("base_layer."):
                return prefix + rest[len("base_layer.") :]
            if rest.split(".", 1)[0] in ADAPTER_PARTS:
                return None
    return name


def in_trainable_module(name: str, patterns: Iterable[str]) -> bool:
    """Whether a (plain) tensor name lies inside a module whose name matches one of ``patterns``."""
    parts = name.split(".")[:-1]
    return any(_search_any(patterns, ".".join(parts[: k + 1])) for k in range(len(parts)))


def tensor_roles(
    model: nn.Module, tensors: Iterable[tuple[str, Tensor]], trainable: Iterable[str]
) -> Iterator[tuple[str, str, Tensor, bool, bool]]:
    """Yield ``(actual_name, plain_name, tensor, is_adapter, is_trainable_module)`` for an injected or plain model."""
    wrappers = list(arena_layers(model))
    trainable = tuple(trainable)
    for name, t in tensors:
        plain = plain_name(name, wrappers)
        if plain is None:
            yield name, name, t, True, False
        else:
            yield name, plain, t, False, in_trainable_module(plain, trainable)


def inject(model: nn.Module, config: ArenaConfig) -> list[str]:
    """Wrap, in place, every Linear / Conv3d / ConvTranspose3d whose qualified name ``re.search``-matches a target.

    Freezes every parameter except the adapters' ``lora_A``, ``lora_B``, ``gate`` and the parameters of modules
    matching ``config.trainable``. Since B starts at zero the wrapped model computes exactly the base model.

    Returns the wrapped names in module order. Raises ValueError when nothing matches, when a matching leaf
    with weights cannot be wrapped (grouped conv, unsupported type), or when the model is already injected.
    """
    if arena_layers(model):
        raise ValueError("model already holds ARENA adapters; merge() them or use a fresh copy before inject()")
    matched, wrapped = [], []
    for name, module in list(model.named_modules()):
        if not name or not _search_any(config.targets, name):
            continue
        matched.append(name)
        wrapper = wrapper_for(module)
        if wrapper is None:
            # Containers (and weightless leaves such as Dropout) are matched incidentally by loose patterns.
            has_weights = next(module.parameters(recurse=False), None) is not None
            if has_weights and next(module.children(), None) is None:
                raise ValueError(
                    f"target pattern matched layer {name!r} of type {type(module).__name__}, which ARENA cannot "
                    "wrap (supported: Linear, Conv3d, ConvTranspose3d); tighten config.targets"
                )
            continue
        if getattr(module, "groups", 1) != 1:
            raise ValueError(
                f"cannot wrap grouped convolution {name!r} (groups={module.groups}); exclude it from targets"
            )
        wrapped.append(name)
    if not wrapped:
        detail = f"; matched only unsupported modules {matched[:5]}" if matched else ""
        raise ValueError(f"no Linear/Conv3d/ConvTranspose3d module matches targets {list(config.targets)}{detail}")
    if config.trainable:
        names = [n for n, _ in model.named_modules() if n]
        missing = [p for p in config.trainable if not any(re.search(p, n) for n in names)]
        if missing:
            raise ValueError(f"trainable patterns {missing} match no module of the model")

    for name in wrapped:
        base = model.get_submodule(name)
        _set_submodule(model, name, wrapper_for(base)(base, config))
    if config.lam_weight == "params":
        layers = [model.get_submodule(name) for name in wrapped]
        costs = [layer.params_per_rank() for layer in layers]
        mean = sum(costs) / len(costs)
        for layer, cost in zip(layers, costs, strict=True):
            # group lasso: a group's penalty grows with the square root of its size
            layer.lam_weight = math.sqrt(cost / mean)
    for _, _, p, is_adapter, is_trainable in tensor_roles(model, model.named_parameters(), config.trainable):
        p.requires_grad_(is_adapter or is_trainable)
    return wrapped


def merge(model: nn.Module) -> nn.Module:
    """Fold every update into its base weight and replace each wrapper by its ``base_layer``.

    Works **in place** (pass ``copy.deepcopy(model)`` to keep the adapter). The result's ``state_dict`` has exactly
    the keys of the original plain network; ``requires_grad`` flags are left as they were.
    """
    for name, layer in arena_layers(model).items():
        layer.merge()
        if not name:
            return layer.base_layer
        _set_submodule(model, name, layer.base_layer)
    return model


def prune(model: nn.Module) -> dict[str, int]:
    """Physically remove every rank whose gate is exactly zero (outputs unchanged); returns the new ranks.

    Gates are replaced by new Parameters: rebuild the optimizer afterwards.
    """
    return {name: layer.prune() for name, layer in arena_layers(model).items()}


def effective_ranks(model: nn.Module) -> dict[str, int]:
    """Number of non-zero gates per wrapped layer."""
    return {name: int(torch.count_nonzero(layer.gate)) for name, layer in arena_layers(model).items()}


def trainable_parameters(model: nn.Module) -> int:
    """Number of elements of ``requires_grad`` parameters.

    Zero-gated ranks still count until :func:`prune` removes them; call it first for ARENA's effective count.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def gate_l1(model: nn.Module, lam: float | None = None) -> Tensor:
    """``sum_l lam_l * w_l * ||g_l||_1`` (each layer's injected ``lam`` unless given; ``w_l`` its ``lam_weight``),
    differentiable, for logging."""
    terms = [(layer.lam if lam is None else lam) * layer.lam_weight * layer.gate.abs().sum()
             for layer in arena_layers(model).values()]
    return torch.stack(terms).sum() if terms else torch.zeros(())
