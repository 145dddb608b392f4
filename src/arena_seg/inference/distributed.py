"""torch.distributed helpers for batch inference: each rank segments its share of the series, rank 0 reports.

Started by ``torchrun`` (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT in the environment). Nothing is initialised
when WORLD_SIZE is 1 or unset, so the same code runs as a plain single process.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Sequence
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")

#: ranks wait for the slowest one at the final gather; the default 30 min would be too short for big shares
_TIMEOUT = _dt.timedelta(hours=24)


def env_world() -> tuple[int, int, int]:
    """(rank, world size, local rank) as torchrun sets them; (0, 1, 0) outside torchrun."""
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_RANK", 0)))


def init_distributed(device: str = "auto") -> str:
    """Join the process group when WORLD_SIZE > 1 (NCCL on GPUs, gloo on CPU); returns the device to use.

    On GPUs each process takes ``cuda:LOCAL_RANK``. Safe to call when already initialised or single-process.
    """
    _, world, local_rank = env_world()
    use_cuda = torch.cuda.is_available() and not str(device).startswith("cpu")
    if world > 1 and use_cuda and device in ("auto", "cuda"):
        device = f"cuda:{local_rank % torch.cuda.device_count()}"
    if world > 1 and dist.is_available() and not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(torch.device(device))
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", timeout=_TIMEOUT)
    return device


def rank_world() -> tuple[int, int]:
    """(rank, world size) of the initialised process group, else (0, 1)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard(items: Sequence[T], rank: int, world: int) -> list[T]:
    """Round-robin share of ``items`` (already in a deterministic order) for ``rank``."""
    return list(items[rank::world])


def broadcast(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (identity when single-process)."""
    if rank_world()[1] == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_gather(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank."""
    world = rank_world()[1]
    if world == 1:
        return [obj]
    out: list[Any] = [None] * world
    dist.all_gather_object(out, obj)
    return out


def finalize() -> None:
    """Leave the process group (if one was joined)."""
    if dist.is_available() and dist.is_initialized():
        # every rank must be past its last collective before any tears gloo down: a rank whose peer has already
        # closed its pairs can abort in C++ ("terminate called without an active exception")
        dist.barrier()
        dist.destroy_process_group()
