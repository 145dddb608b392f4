"""Which torch device a ``device`` option (``auto``, ``cpu``, ``cuda``, ``cuda:N``) means on this machine."""

from __future__ import annotations

import torch

from arena_seg.errors import InputError

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """``auto`` (or None): the first GPU when there is one, else the CPU; ``cpu``; ``cuda`` or ``cuda:N``.

    A GPU that this machine does not have is refused here, with one line (:class:`InputError`), not later by
    torch in the middle of a run.
    """
    if isinstance(name, torch.device):
        name = str(name)
    name = (name or "auto").strip()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise InputError(f"device {name!r}: this machine has no GPU; use cpu or auto")
        index = name.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise InputError(f"device {name!r}: this machine has {torch.cuda.device_count()} GPU(s)")
        return torch.device(name)
    raise InputError(f"device {name!r}: give {DEVICE_CHOICES}")
