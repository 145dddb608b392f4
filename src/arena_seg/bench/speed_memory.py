"""Peak training memory of one configuration, measured in a fresh process: ``bench speed`` forks one per
configuration from a forkserver that preloads this module, so torch and MONAI are imported only once.

On CUDA (measured in the benchmark's own process, whose other models are freed by then): ``max_memory_allocated``
over the steps (weights, gradients, optimizer state, activations) less what was allocated before. On CPU: the
process's peak resident set (``VmHWM``, reset through ``/proc/self/clear_refs`` just before the network is built)
less its resident set at that moment, i.e. what the network and its training add to an idle Python with the
libraries loaded. (``ru_maxrss`` would be wrong in a child: Linux carries the parent's high-water mark into a
vfork/exec'd process.) ``python -m arena_seg.bench.speed_memory '<json job>'`` measures one configuration by hand.
"""

from __future__ import annotations

import gc
import json
import sys

import monai.networks.nets  # noqa: F401  (imported before the baseline: libraries are not the network's memory)
import torch

from arena_seg import adapters

from .costs import NetworkDef, Trainer, batch, prepare
from .tracking import reset_peak_rss, status_mb


def measure(job: dict) -> dict:
    """Build the job's network for its config, take ``steps`` training steps; peak memory above the start."""
    if job["config"].startswith("peft"):
        import peft  # noqa: F401

    device = torch.device(job["device"])
    net = NetworkDef.from_dict(job["network"])
    if device.type == "cuda":
        gc.collect()
        torch.cuda.synchronize(device)  # initialises CUDA where needed
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        baseline = torch.cuda.memory_allocated(device) / 2**20
    else:
        reset_peak_rss()
        baseline = status_mb("VmRSS")
    trainer = Trainer(prepare(net, job["config"], job["rank"]), device, amp=job["amp"])
    image, label = batch(int(net.arch["kwargs"]["out_channels"]), tuple(job["size"]), job["batch"], device)
    for _ in range(job["steps"]):
        trainer.step(image, label)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak = status_mb("VmHWM")
    return {"config": job["config"], "peak_mb": round(peak, 1), "baseline_mb": round(baseline, 1),
            "memory_mb": round(peak - baseline, 1), "trainable": adapters.trainable_parameters(trainer.model)}


def safe_measure(job: dict) -> dict:
    """:func:`measure`, with a failure reported as ``{"config", "error"}`` instead of raised."""
    try:
        if job.get("threads"):
            import torch

            torch.set_num_threads(int(job["threads"]))
        return measure(job)
    except Exception as exc:  # a config that cannot run (e.g. out of memory) must not sink the whole benchmark
        return {"config": job["config"], "error": f"{type(exc).__name__}: {exc}"}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    print(json.dumps(safe_measure(json.loads(argv[0]))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
