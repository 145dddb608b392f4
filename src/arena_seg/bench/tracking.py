"""What a benchmark run records while it trains: gate values per epoch, and the run's peak memory."""

from __future__ import annotations

import contextlib
import ctypes
import gc

import torch
from torch import nn

from arena_seg import adapters


class GateRecorder:
    """Progress callback for ``engine.finetune`` that reads the model's gates after every epoch.

    Keeps, per adapted layer, the mean |gate| and the number of non-zero gates per epoch (entry 0 is the state
    before training), the loss per epoch, and with ``full=True`` every gate value.
    """

    def __init__(self, model: nn.Module, full: bool = False) -> None:
        self.model = model
        self.full = full
        self.mean_abs: dict[str, list[float]] = {}
        self.nonzero: dict[str, list[int]] = {}
        self.values: dict[str, list[list[float]]] = {}
        self.loss: list[float] = []
        self._started = False

    def _read(self) -> None:
        for name, layer in adapters.arena_layers(self.model).items():
            gate = layer.gate.detach().float().cpu()
            self.mean_abs.setdefault(name, []).append(round(float(gate.abs().mean()) if gate.numel() else 0.0, 6))
            self.nonzero.setdefault(name, []).append(int(torch.count_nonzero(gate)))
            if self.full:
                self.values.setdefault(name, []).append([round(float(v), 6) for v in gate])

    def __call__(self, event: dict) -> None:
        if not self._started:
            # the engine prepares the model inside finetune(): epoch 0 is every gate at its initial value
            self._started = True
            layers = adapters.arena_layers(self.model)
            for name, layer in layers.items():
                init = float(layer.config.gate_init)
                self.mean_abs[name] = [init]
                self.nonzero[name] = [layer.rank]
                if self.full:
                    self.values[name] = [[init] * layer.rank]
        self.loss.append(round(float(event["loss"]), 6))
        self._read()

    def to_dict(self) -> dict:
        gates = {name: {"mean_abs": self.mean_abs[name], "nonzero": self.nonzero[name]} for name in self.mean_abs}
        out: dict = {"loss": self.loss, "gates": gates}
        if self.full:
            out["gate_values"] = self.values
        return out


def _release_freed_memory() -> None:
    """Hand memory freed by earlier runs back to the OS (glibc), so the next run's growth shows in its RSS."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def status_mb(field: str) -> float:
    """``VmRSS`` / ``VmHWM`` (peak RSS) of /proc/self/status in MiB; NaN where there is no /proc."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def reset_peak_rss() -> None:
    """Reset ``VmHWM`` to the current RSS (Linux ≥ 4.0); a no-op elsewhere."""
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


class MemoryPeak:
    """Peak memory of a block: CUDA ``max_memory_allocated``, or on CPU the peak resident set (``VmHWM``, reset
    on entry) less the resident set at entry; freed heap memory is first handed back to the OS so that a run's
    growth shows. ``mb`` is NaN where neither is available. On CPU this is approximate (allocator reuse,
    one-off first-use costs); ``bench speed`` measures training memory in one fresh process per configuration."""

    def __init__(self, device: torch.device | str) -> None:
        self.device = torch.device(device)
        self.mb = float("nan")
        self.kind = "cuda_max_allocated" if self.device.type == "cuda" else "cpu_peak_rss_above_start"
        self._start = float("nan")

    def __enter__(self) -> MemoryPeak:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            _release_freed_memory()
            reset_peak_rss()
            self._start = status_mb("VmRSS")
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.mb = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            self.mb = status_mb("VmHWM") - self._start
