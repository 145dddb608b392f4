"""`arena-seg bench memory`: wall time and peak memory of predicting clinical-size CT, per model, before and after.

Each measurement runs in a fresh process (``python -m arena_seg.bench.memory '<json job>'``) that reads the scan
from a NIfTI file, loads the model and predicts, as ``arena-seg predict`` does; its peak is the process's
``VmHWM`` (max RSS, everything included: Python, torch, the model, the scan), or CUDA's max allocated. ``before``
is the pipeline the predictor used until the change (MONAI ``infer_transforms`` → ``sliding_window_inference`` →
``Invertd`` → argmax, kept here as :func:`legacy_predict`); ``after`` is :class:`~arena_seg.inference.predictor.
Predictor`. Scans are a phantom (or ``--source`` CT) resampled to the requested shape over the same field of view.

Training rows (``pipeline`` ``train-before`` / ``train-after``) build the CacheDataset of ``train_scans`` such
scans with their labels, as ``finetune`` does: before with MONAI's loading (LoadImaged → Orientationd →
Spacingd), after with :class:`~arena_seg.data.transforms.LoadOnGridd` (``train_transforms(loader=...)``).
Every row also records the process's CPU time (user + sys; on a shared machine less noisy than wall time), its
minor page faults, and for predictions the seconds spent inside the network's forward calls.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: shapes (X, Y, Z) the benchmark can make; 512 × 512 × 400 is the issue's clinical scan
SIZES = {"256x256x200": (256, 256, 200), "512x512x400": (512, 512, 400), "512x512x800": (512, 512, 800)}
#: networks built with random weights when no checkpoint is given (the same memory as the real ones)
RANDOM_WEIGHTS = ("monai-wholebody", "fseft-swinunetr")
_MAX_PROB_ELEMENTS = 2**28  # the legacy predictor's switch to nearest-neighbour labels


def legacy_predict(predictor, array: np.ndarray, affine: np.ndarray, sw_batch_size: int = 2) -> np.ndarray:
    """The predictor's pipeline before memory was bounded (reference for tests and the ``before`` figures):
    float32 copy → MONAI Orientation/Spacing → full-volume sliding window → probabilities → Invertd → argmax."""
    import torch
    from monai.data import MetaTensor
    from monai.inferers import sliding_window_inference
    from monai.transforms import Invertd

    from arena_seg.data.transforms import infer_transforms

    spec = predictor.spec
    preprocess = infer_transforms(spec.preprocessing)
    image = MetaTensor(torch.as_tensor(np.asarray(array, dtype=np.float32))[None],
                       affine=torch.as_tensor(affine, dtype=torch.float64))
    data = preprocess({"image": image})
    with torch.no_grad(), torch.autocast(device_type=predictor.device.type, enabled=predictor.amp):
        logits = sliding_window_inference(data["image"].unsqueeze(0).to(predictor.device), spec.preprocessing.patch,
                                          sw_batch_size, predictor.model, overlap=predictor.overlap, mode="gaussian")
    logits = torch.as_tensor(logits).float()
    if spec.background_channel is None:
        probs = torch.sigmoid(logits)
        probs = torch.cat([torch.full_like(probs[:, :1], 0.5), probs], dim=1)[0].cpu()
    else:
        probs = torch.softmax(logits, dim=1)[0].cpu()
    del logits
    nearest = probs.numel() * array.size / max(1, data["image"][0].numel()) > _MAX_PROB_ELEMENTS
    values = probs.argmax(0, keepdim=True).float() if nearest else probs
    data["pred"] = MetaTensor(values, affine=data["image"].affine, meta=data["image"].meta,
                              applied_operations=data["image"].applied_operations)
    pred = Invertd(keys="pred", transform=preprocess, orig_keys="image", nearest_interp=nearest)(data)["pred"]
    return (pred[0].round() if nearest else pred.argmax(0)).cpu().numpy().astype(np.uint8)


def clinical_scan(shape: tuple[int, int, int], source: str | None = None, seed: int = 0, label: bool = False
                  ) -> tuple[np.ndarray, np.ndarray]:
    """An int16 CT of ``shape`` (RAS) covering the field of view of ``source`` (a CT file; default a phantom
    made at 3 mm), resampled trilinearly slab by slab (the float result never exists at full size). ``label``:
    the phantom's label map instead (or ``source`` read as one), nearest-neighbour, uint8."""
    import torch

    from arena_seg.inference.resample import resample_image

    if source is None:
        from arena_seg.data.phantoms import make_phantom

        phantom = make_phantom(seed, spacing=(3.0, 3.0, 3.0))
        image, src_affine = (phantom.label if label else phantom.image), phantom.affine
    else:
        from arena_seg.data.volumes import read_volume

        vol = read_volume(source)
        image, src_affine = vol.array, vol.affine
    # the same field of view (voxel edges) on the finer grid: spacing = extent / shape, same corner
    extent = np.abs(np.diag(src_affine)[:3]) * np.asarray(image.shape)
    spacing = extent / np.asarray(shape)
    affine = np.diag([*(spacing * np.sign(np.diag(src_affine)[:3])), 1.0])
    corner = src_affine[:3, 3] - 0.5 * np.diag(src_affine)[:3]
    affine[:3, 3] = corner + 0.5 * np.diag(affine)[:3]
    out = np.empty(shape, dtype=np.uint8 if label else np.int16)
    for z0 in range(0, shape[2], 32):
        z1 = min(z0 + 32, shape[2])
        part = affine.copy()
        part[:3, 3] = affine[:3, :3] @ np.array([0, 0, z0]) + affine[:3, 3]
        slab = resample_image(image, src_affine, (*shape[:2], z1 - z0), part, mode="nearest" if label else "bilinear")
        out[:, :, z0:z1] = torch.round(slab).numpy().astype(out.dtype)
    return out, affine


#: pipelines of a job: predictions before/after, and the training CacheDataset loaded before/after
PIPELINES = ("before", "after", "train-before", "train-after")


def measure(job: dict) -> dict:
    """One measurement in this process: {"model", "path", "pipeline" (one of PIPELINES), "device", "threads"};
    training rows also "label" (the label file) and "train_scans" (how many items the CacheDataset holds)."""
    import torch

    if job.get("threads"):
        torch.set_num_threads(int(job["threads"]))
    if job["pipeline"].startswith("train-"):
        return measure_loading(job)
    from arena_seg.bench.tracking import reset_peak_rss, status_mb
    from arena_seg.data.volumes import read_volume
    from arena_seg.inference.memory import label_counts
    from arena_seg.inference.predictor import Predictor

    reset_peak_rss()
    start = time.perf_counter()
    volume = read_volume(job["path"])
    model, spec = _model(job["model"], job.get("checkpoint"))
    device = job.get("device", "cpu")
    predictor = Predictor(model, spec, device=device)
    network = _ForwardClock(predictor.model)
    loaded_mb = status_mb("VmRSS")
    cuda = predictor.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(predictor.device)
    cpu0, t0 = _cpu(), time.perf_counter()
    if job["pipeline"] == "before":
        mask = legacy_predict(predictor, volume.array, volume.affine, sw_batch_size=int(job.get("sw_batch_size") or 2))
    else:
        if job.get("sw_batch_size"):
            predictor.sw_batch_size = int(job["sw_batch_size"])
        mask = predictor.predict_array(volume.array, volume.affine)
    seconds = time.perf_counter() - t0
    cpu = {k: round(v - cpu0[k], 2) if k != "minflt" else int(v - cpu0[k]) for k, v in _cpu().items()}
    out = {"model": job["model"], "pipeline": job["pipeline"], "shape": list(volume.shape),
           "predict_s": round(seconds, 2), "total_s": round(time.perf_counter() - start, 2),
           "network_s": round(network.seconds, 2), "cpu_s": round(cpu["user"] + cpu["sys"], 2),
           "sys_s": cpu["sys"], "minor_faults": cpu["minflt"],
           "peak_rss_mb": round(status_mb("VmHWM"), 1), "loaded_rss_mb": round(loaded_mb, 1),
           "classes": predictor.channels, "interpolation": predictor.interpolation_for(int(mask.size)),
           "sw_batch_size": int(job.get("sw_batch_size") or (2 if job["pipeline"] == "before"
                                                              else predictor.sw_batch_size)),
           "mask_counts": label_counts(mask)[:predictor.channels].tolist()}
    if cuda:
        out["cuda_peak_mb"] = round(torch.cuda.max_memory_allocated(predictor.device) / 2**20, 1)
    if job.get("save"):
        np.save(job["save"], mask)
    return out


def measure_loading(job: dict) -> dict:
    """The training CacheDataset of ``train_scans`` copies of (``path``, ``label``) on ``model``'s grid, as
    ``finetune`` builds it: pipeline ``train-before`` (MONAI loading) or ``train-after`` (chunked)."""
    import torch
    from monai.data import CacheDataset

    from arena_seg.bench.tracking import reset_peak_rss, status_mb
    from arena_seg.data.transforms import train_transforms
    from arena_seg.models.registry import get_spec

    spec = get_spec(job["model"])
    transform = train_transforms(spec.preprocessing, {1: 1, 2: 2}, loader="monai" if job["pipeline"] ==
                                 "train-before" else "chunked")
    items = [{"image": job["path"], "label": job["label"]} for _ in range(int(job.get("train_scans", 3)))]
    reset_peak_rss()
    loaded_mb = status_mb("VmRSS")
    cpu0, t0 = _cpu(), time.perf_counter()
    dataset = CacheDataset(items, transform=transform, cache_rate=1.0, num_workers=0, progress=False)
    seconds = time.perf_counter() - t0
    cpu = _cpu()
    first = dataset._cache[0]  # what training draws its patches from
    cached = sum(int(torch.as_tensor(v).numel() * torch.as_tensor(v).element_size())
                 for item in dataset._cache for v in item.values() if isinstance(v, torch.Tensor))
    return {"model": job["model"], "pipeline": job["pipeline"], "shape": list(_shape(job["path"])),
            "scans": len(items), "load_s": round(seconds, 2),
            "cpu_s": round(cpu["user"] + cpu["sys"] - cpu0["user"] - cpu0["sys"], 2),
            "sys_s": round(cpu["sys"] - cpu0["sys"], 2), "minor_faults": int(cpu["minflt"] - cpu0["minflt"]),
            "peak_rss_mb": round(status_mb("VmHWM"), 1), "loaded_rss_mb": round(loaded_mb, 1),
            "cached_mb": round(cached / 2**20, 1), "cached_shape": list(first["image"].shape)}


def _shape(path: str) -> tuple[int, ...]:
    import nibabel as nib

    return tuple(int(s) for s in nib.load(path).shape)


def _cpu() -> dict[str, float]:
    """This process's user and system CPU seconds and minor page faults so far."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"user": usage.ru_utime, "sys": usage.ru_stime, "minflt": usage.ru_minflt}


class _ForwardClock:
    """Wall seconds spent inside ``model``'s forward calls (hooks; the time outside is the pipeline's own)."""

    def __init__(self, model) -> None:
        self.seconds = 0.0
        self._start = 0.0
        model.register_forward_pre_hook(self._enter)
        model.register_forward_hook(self._leave)

    def _enter(self, *_) -> None:
        self._start = time.perf_counter()

    def _leave(self, *_) -> None:
        self.seconds += time.perf_counter() - self._start


def _model(name: str, checkpoint: str | None):
    """The named model; wholebody and FSEFT with random weights unless a checkpoint is given (no download)."""
    from arena_seg.inference.loading import load_model
    from arena_seg.models.registry import build_network, get_spec

    if name in RANDOM_WEIGHTS and checkpoint is None:
        import torch

        torch.manual_seed(0)
        spec = get_spec(name)
        return build_network(spec.arch), spec
    return load_model(name, checkpoint)


@dataclass
class MemoryOptions:
    models: list[str] = field(default_factory=lambda: ["default", "monai-wholebody"])
    sizes: list[str] = field(default_factory=lambda: ["512x512x400"])
    pipelines: list[str] = field(default_factory=lambda: ["before", "after"])
    rows: list[str] = field(default_factory=lambda: ["predict", "train"])  # prediction and/or training rows
    train_models: list[str] = field(default_factory=lambda: ["default"])  # grids the training rows load onto
    train_scans: int = 3  # items in the training rows' CacheDataset
    device: str = "cpu"
    threads: int | None = None
    sw_batch_size: int | None = None  # windows per forward call (default: each pipeline's own)
    checkpoint: str | None = None
    keep: str | None = None  # folder for the scans (default: a temporary one)
    source: str | None = None  # CT whose field of view is resampled (default: a phantom)
    source_label: str | None = None  # its label map, for the training rows (a phantom's label without --source)


def run_memory(out: Path | None, opts: MemoryOptions) -> list[dict]:
    """Every model × size × pipeline in its own process, one after another (then the training rows); prints a
    table, writes ``memory.json`` and ``memory.md`` into ``out`` when given."""
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="arena-memory-") as tmp:
        folder = Path(opts.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for size in opts.sizes:
            shape = SIZES.get(size) or tuple(int(v) for v in size.lower().split("x"))
            name = "x".join(map(str, shape))
            path = folder / f"ct_{name}.nii"
            if not path.is_file():
                _write_scan(path, shape, opts.source)
            jobs = []
            if "predict" in opts.rows:
                jobs += [{"model": model, "path": str(path), "pipeline": pipeline, "device": opts.device,
                          "threads": opts.threads, "checkpoint": opts.checkpoint, "sw_batch_size": opts.sw_batch_size}
                         for model in opts.models for pipeline in opts.pipelines]
            if "train" in opts.rows and opts.train_scans > 0:
                if opts.source is not None and opts.source_label is None:
                    print("training rows skipped: --source needs --source-label (the scan's label map)", flush=True)
                else:
                    label = folder / f"label_{name}.nii"
                    if not label.is_file():
                        _write_scan(label, shape, opts.source_label if opts.source else None, label=True)
                    jobs += [{"model": model, "path": str(path), "label": str(label), "pipeline": f"train-{pipeline}",
                              "threads": opts.threads, "train_scans": opts.train_scans}
                             for model in opts.train_models for pipeline in opts.pipelines]
            for job in jobs:
                row = _run_job(job)
                rows.append(row)
                print(_line(row), flush=True)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "memory.json").write_text(json.dumps(rows, indent=1))
        (out / "memory.md").write_text(_table(rows))
    return rows


def _write_scan(path: Path, shape: tuple[int, int, int], source: str | None, label: bool = False) -> None:
    import nibabel as nib

    array, affine = clinical_scan(shape, source, label=label)
    nib.save(nib.Nifti1Image(array, affine), str(path))  # uncompressed: reading is not what is measured


def _run_job(job: dict) -> dict:
    proc = subprocess.run([sys.executable, "-m", "arena_seg.bench.memory", json.dumps(job)], capture_output=True,
                          text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"model": job["model"], "pipeline": job["pipeline"], "error": f"exit {proc.returncode}: {tail}"}
    return json.loads(lines[-1])


def _seconds(row: dict) -> float:
    return row["load_s"] if "load_s" in row else row["predict_s"]


def _line(row: dict) -> str:
    if "error" in row:
        return f"{row['model']:>16} {row['pipeline']:>12}: {row['error']}"
    shape = "x".join(map(str, row["shape"]))
    what = f"{row['scans']} scans cached in" if "scans" in row else "predict"
    network = f", network {row['network_s']:.1f} s" if "network_s" in row else ""
    return (f"{row['model']:>16} {row['pipeline']:>12} {shape}: {what} {_seconds(row):.1f} s (CPU {row['cpu_s']:.1f} s"
            f"{network}), peak RSS {row['peak_rss_mb'] / 1024:.2f} GB (at start {row['loaded_rss_mb'] / 1024:.2f} GB)"
            + (f", CUDA peak {row['cuda_peak_mb'] / 1024:.2f} GB" if "cuda_peak_mb" in row else ""))


def _table(rows: list[dict]) -> str:
    lines = ["| model | pipeline | scan | time (s) | CPU user+sys (s) | in the network (s) | peak RSS (GB) "
             "| RSS at start (GB) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['pipeline']} | | | | | {r['error']} | |")
            continue
        scan = "×".join(map(str, r["shape"])) + (f" (CacheDataset of {r['scans']})" if "scans" in r else "")
        network = f"{r['network_s']:.1f}" if "network_s" in r else ""
        lines.append(f"| {r['model']} | {r['pipeline']} | {scan} | {_seconds(r):.1f} | {r['cpu_s']:.1f} | {network} "
                     f"| {r['peak_rss_mb'] / 1024:.2f} | {r['loaded_rss_mb'] / 1024:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    print(json.dumps(measure(json.loads(argv[0]))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
