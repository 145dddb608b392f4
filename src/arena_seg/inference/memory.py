"""Memory of inference: the peak of each scan's run (for report.json and the app's infer result), an estimate of
what a scan needs, and the check that refuses more batch processes than the machine's memory holds."""

from __future__ import annotations

import contextlib
import os
import resource
from collections.abc import Sequence

import numpy as np
import torch


def _status_mb(field: str) -> float | None:
    """``VmRSS`` / ``VmHWM`` of /proc/self/status in MiB; None where there is no /proc."""
    with contextlib.suppress(OSError), open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return None


def available_mb() -> float | None:
    """``MemAvailable`` of /proc/meminfo in MiB (what can be allocated without swapping); None if unknown."""
    with contextlib.suppress(OSError), open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return None


class PeakMemory:
    """Peak memory while the block runs: the process's peak resident set (``VmHWM``, reset on entry through
    /proc/self/clear_refs) and, on CUDA, ``max_memory_allocated``. Process-wide: threads running beside the block
    (read-ahead, other requests) count too. Where the peak cannot be reset, the process's lifetime peak is
    reported (``rss_kind`` says which)."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.result: dict = {}

    def __enter__(self) -> PeakMemory:
        self._reset = False
        with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # VmHWM := VmRSS (Linux >= 4.0)
            self._reset = True
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(self, *exc) -> None:
        peak = _status_mb("VmHWM")
        if peak is None:  # no /proc: ru_maxrss (KiB on Linux), the lifetime peak
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        self.result = {"peak_rss_mb": round(peak, 1),
                       "rss_kind": "peak during this scan" if self._reset else "process lifetime peak"}
        if self.device.type == "cuda":
            self.result["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated(self.device) / 2**20, 1)


def label_counts(mask: np.ndarray, chunk: int = 2**24) -> np.ndarray:
    """Voxels per value (256,) of a uint8 mask, without the int64 copy ``np.bincount(mask.ravel())`` makes."""
    flat = mask.reshape(-1)
    counts = np.zeros(256, dtype=np.int64)
    for s in range(0, flat.size, chunk):
        counts += np.bincount(flat[s:s + chunk], minlength=256)
    return counts


def estimate_mb(predictor, shape: Sequence[int], spacing: Sequence[float]) -> float:
    """Memory (MiB) one scan of ``shape`` voxels at ``spacing`` mm adds to a process that has the model loaded:
    the scan (int16, with reading overhead), its mask, the network-grid volume, the sliding window's score
    buffer (K × (roi + 1) × Y × Z) and the windows' outputs and activations. Calibrated on this CPU's
    measurements (``arena-seg bench memory``); an upper estimate, not a bound."""
    from arena_seg.inference.resample import network_grid

    pre = predictor.spec.preprocessing
    net, _ = network_grid(tuple(int(s) for s in shape), np.diag([*map(float, spacing), 1.0]), pre)
    voxels, net_voxels, window = float(np.prod(shape)), float(np.prod(net)), float(np.prod(pre.patch))
    k = predictor.channels
    scores = 4.0 * k * (pre.patch[0] + 1) * net[1] * net[2] * 1.1  # + count and the slab's softmax temporaries
    windows = predictor.sw_batch_size * window * 4.0 * (2 * k + 48)  # outputs × weight, activations (allowance)
    return (4 * voxels + 3 * voxels + 12 * net_voxels + scores + windows + 2**28) / 2**20  # + 256 MB of chunks


def process_verdict(estimate: float, processes: int, what: str) -> str | None:
    """A message refusing ``processes`` processes on this machine when each needs ``estimate`` MiB more than now
    and together they exceed MemAvailable; None when they fit (or the memory cannot be read)."""
    free = available_mb()
    if free is None or processes <= 1 or processes * estimate <= free:
        return None
    fits = max(int(free // max(estimate, 1.0)), 0)
    return (f"{processes} processes on this machine would each need about {estimate / 1024:.1f} GB more for "
            f"{what}, but only {free / 1024:.1f} GB are available: start at most {fits} "
            f"(torchrun --nproc_per_node {max(fits, 1)}), or free memory first")


def local_processes() -> int:
    """Processes of this run on this machine (torchrun's LOCAL_WORLD_SIZE; 1 outside torchrun)."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)


def series_geometry(item) -> tuple[tuple[int, int, int], tuple[float, float, float]] | None:
    """Shape and spacing of a batch item from its headers only (NIfTI header, one DICOM header × files)."""
    try:
        if item.kind == "nifti":
            import nibabel as nib

            img = nib.load(item.files[0])
            return tuple(int(s) for s in img.shape[:3]), tuple(float(z) for z in img.header.get_zooms()[:3])
        import pydicom

        ds = pydicom.dcmread(item.files[0], stop_before_pixels=True)
        frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
        row, col = (float(v) for v in getattr(ds, "PixelSpacing", (1.0, 1.0)))
        thick = float(getattr(ds, "SliceThickness", 1.0) or 1.0)
        return (int(ds.Columns), int(ds.Rows), max(len(item.files), frames)), (col, row, thick)
    except Exception:  # unreadable headers are the batch runner's to report, series by series
        return None


def batch_verdict(predictor, items: Sequence, processes: int | None = None) -> str | None:
    """Refusal message when this machine's batch processes cannot all hold the largest series; else None."""
    processes = local_processes() if processes is None else processes
    if processes <= 1:
        return None
    geometries = [(g, item) for item in items if (g := series_geometry(item)) is not None]
    if not geometries:
        return None
    (shape, spacing), item = max(geometries, key=lambda gi: float(np.prod(gi[0][0])))
    need = estimate_mb(predictor, shape, spacing)
    return process_verdict(need, processes, f"the largest series ({item.key}, {'×'.join(map(str, shape))} voxels)")
