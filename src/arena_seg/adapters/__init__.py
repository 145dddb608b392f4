"""ARENA: sparse, self-pruning low-rank adapters (``W + scale * B diag(g) A`` with an l1 proximal step on ``g``).

Typical loop::

    inject(model, ArenaConfig(rank=32, lam=1e-3, targets=(r"qkv$",), trainable=(r"^out",)))
    opt = ArenaOptimizer(torch.optim.AdamW(p for p in model.parameters() if p.requires_grad), model)
    ...  # loss.backward(); opt.step()  -> gates are soft-thresholded after every step
    prune(model); save_adapter(model, "run/adapter")  # run/adapter.safetensors + run/adapter.json
    plain = merge(copy.deepcopy(model))  # zero-cost inference
"""

from .config import ArenaConfig, lora_config
from .io import adapter_paths, base_weights_sha256, load_adapter, read_manifest, save_adapter
from .layers import ArenaConv3d, ArenaConvTranspose3d, ArenaLayer, ArenaLinear
from .model import arena_layers, effective_ranks, gate_l1, inject, merge, prune, trainable_parameters
from .proximal import ArenaOptimizer, proximal_step, register_proximal_hook, soft_threshold
from .selectors import bitfit, full_finetune, linear_probe

__all__ = [
    "ArenaConfig",
    "ArenaConv3d",
    "ArenaConvTranspose3d",
    "ArenaLayer",
    "ArenaLinear",
    "ArenaOptimizer",
    "adapter_paths",
    "arena_layers",
    "base_weights_sha256",
    "bitfit",
    "effective_ranks",
    "full_finetune",
    "gate_l1",
    "inject",
    "linear_probe",
    "load_adapter",
    "lora_config",
    "merge",
    "proximal_step",
    "prune",
    "read_manifest",
    "register_proximal_hook",
    "save_adapter",
    "soft_threshold",
    "trainable_parameters",
]
