"""Batch inference: many CT series (DICOM folders, NIfTI files), one loaded model, NIfTI + DICOM SEG + a report.

Each series gets a folder ``OUTPUT/<key>/`` with ``mask.nii.gz`` (on the series' own grid), ``labels.json``,
``seg.dcm`` (DICOM inputs) and ``done.json`` (its report entry, written last). Every file is written to a
temporary name and renamed, so an interrupted run leaves no half-written output, and a rerun skips the series
whose ``done.json`` matches the model, labels and formats. Under ``torchrun`` the series are shared round-robin
between the ranks and rank 0 writes ``OUTPUT/report.json`` (the outputs and the report: batch_outputs.py).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from arena_seg import __version__
from arena_seg.errors import InputError
from arena_seg.files import write_json as _write_json
from arena_seg.inference import distributed, memory
from arena_seg.inference.batch_inputs import SeriesItem, collect_inputs
from arena_seg.inference.batch_outputs import build_report, previous_entry, read_series, summary_line, write_outputs
from arena_seg.inference.batch_outputs import reason as _reason
from arena_seg.inference.batch_outputs import since as _since

__all__ = ["FORMATS", "BatchRunner", "collect_inputs", "run_batch", "summary_line"]

FORMATS = ("nifti", "seg")


@dataclass
class _Job:
    """A series on its way through read → network → write."""

    item: SeriesItem
    entry: dict
    array: np.ndarray | None = None
    affine: np.ndarray | None = None
    source: object | None = None  # the read DicomSeries (what a DICOM SEG references); None for NIfTI
    mask: np.ndarray | None = None


class _NetworkClock:
    """Seconds spent inside the network's forward (hooks on the model), to split network time from the rest."""

    def __init__(self, model, device) -> None:
        import torch

        self.seconds, self._start = 0.0, 0.0
        cuda = str(device).startswith("cuda")
        self._sync = (lambda: torch.cuda.synchronize(device)) if cuda else (lambda: None)
        self._hooks = [model.register_forward_pre_hook(self._pre), model.register_forward_hook(self._post)]

    def _pre(self, *_):
        self._sync()
        self._start = time.perf_counter()

    def _post(self, *_):
        self._sync()
        self.seconds += time.perf_counter() - self._start

    def close(self) -> None:
        for h in self._hooks:
            h.remove()


class BatchRunner:
    """Holds a loaded :class:`~arena_seg.inference.predictor.Predictor` and segments series after series."""

    def __init__(self, predictor, formats: Sequence[str] = FORMATS, labels: Sequence[str] | None = None,
                 min_slices: int = 3, overwrite: bool = False, model_ref: str = "", pipeline: bool = True) -> None:
        bad = [f for f in formats if f not in FORMATS]
        if bad or not formats:
            raise InputError(f"--format {','.join(formats)}: choose from {','.join(FORMATS)}")
        known = predictor.labels
        unknown = [n for n in labels or [] if n not in known]
        if unknown:
            raise InputError(f"--labels: the model has no organ {', '.join(unknown)}; it has {', '.join(known)}")
        self.predictor = predictor
        self.formats = tuple(formats)
        self.min_slices = int(min_slices)
        self.overwrite = bool(overwrite)
        self.pipeline = bool(pipeline)  # read ahead / write behind in threads while the network runs
        self.model_ref = model_ref or predictor.spec.name
        self.labels = {n: v for n, v in known.items() if labels is None or n in labels}

    @classmethod
    def from_model(cls, ref: str = "default", checkpoint: str | None = None, device: str = "auto", **kwargs):
        """Load the model once (``load_predictor``: a model, or ``library:DIR``) and wrap it."""
        from arena_seg.inference.loading import load_predictor

        return cls(load_predictor(ref, checkpoint, device), model_ref=str(ref), **kwargs)

    @property
    def fingerprint(self) -> dict:
        """What a previous result must match to be reused on a rerun."""
        return {"model": self.model_ref, "network": self.predictor.spec.name, "labels": self.labels,
                "formats": list(self.formats), "tool": __version__}

    def run(self, inputs: Sequence[str | Path | SeriesItem], output_dir: str | Path, progress: bool = False,
            sources: Sequence[str | Path] | None = None) -> dict:
        """Segment every series of ``inputs`` (folders, files or :class:`SeriesItem`); returns the report.

        ``sources`` names the inputs in the report (default: the folders/files among ``inputs``).
        Under an initialised torch.distributed group each rank takes its round-robin share, and the merged
        report (every rank gets it) is written by rank 0 to ``output_dir/report.json``.
        """
        from tqdm import tqdm

        start = time.perf_counter()
        out = Path(output_dir)
        rank, world = distributed.rank_world()
        items = [i for i in inputs if isinstance(i, SeriesItem)]
        paths = [i for i in inputs if not isinstance(i, SeriesItem)]
        if rank == 0 and paths:
            items += collect_inputs(paths, exclude=[out])
        items = sorted(distributed.broadcast(items), key=lambda i: i.key)
        if not items:
            raise InputError(f"no DICOM series or NIfTI files found in {', '.join(map(str, paths))}")
        # more processes than memory holds would swap or be killed mid-run: refuse (every rank, rank 0 decides)
        verdict = distributed.broadcast(memory.batch_verdict(self.predictor, items) if rank == 0 else None)
        if verdict:
            raise InputError(verdict)
        mine = distributed.shard(items, rank, world)
        with tqdm(total=len(mine), unit="series", disable=not progress or rank != 0, dynamic_ncols=True,
                  desc="infer" if world == 1 else f"infer (rank 0 of {world})") as bar:
            entries = self._run_share(mine, out, bar)
        for entry in entries:
            entry["rank"] = rank
        merged = [e for part in distributed.all_gather(entries) for e in part]
        model = {"ref": self.model_ref, "network": self.predictor.spec.name, "labels": self.labels}
        report = build_report(sorted(merged, key=lambda e: e["key"]), sources or paths, out, world,
                              time.perf_counter() - start, model=model, formats=self.formats)
        if rank == 0:
            _write_json(out / "report.json", report)
        return report

    def _run_share(self, items: list[SeriesItem], out: Path, bar) -> list[dict]:
        """Read the next series and write the previous one in threads while the network runs on this one."""
        entries: list[dict] = []

        def finished(entry: dict) -> None:
            entries.append(entry)
            bar.set_postfix_str(f"{entry['key'][:30]}: {entry['status']}")
            bar.update(1)

        if not self.pipeline:
            for item in items:
                finished(self.process(item, out))
            return entries
        with ThreadPoolExecutor(1, "arena-read") as reader, ThreadPoolExecutor(1, "arena-write") as writer:
            loads = deque(reader.submit(self._load, item, out) for item in items[:1])
            rest, writing = iter(items[1:]), None
            while loads:
                job = loads.popleft().result()
                nxt = next(rest, None)
                if nxt is not None:  # read the next series while this one is in the network
                    loads.append(reader.submit(self._load, nxt, out))
                if job.array is not None:
                    self._predict(job)
                if writing is not None:  # at most one series waits to be written
                    finished(writing.result())
                    writing = None
                if job.mask is not None:
                    writing = writer.submit(self._finish, job, out)
                else:
                    finished(job.entry)
            if writing is not None:
                finished(writing.result())
        return entries

    def process(self, item: SeriesItem, out: Path) -> dict:
        """Segment one series and write its outputs; never raises for a bad series (the entry says why)."""
        job = self._load(item, out)
        if job.array is None:
            return job.entry
        self._predict(job)
        return job.entry if job.mask is None else self._finish(job, out)

    def _load(self, item: SeriesItem, out: Path) -> _Job:
        """Read a series (or decide it is done/skipped/failed already: ``array`` stays None)."""
        entry = {"key": item.key, "kind": item.kind, "series_instance_uid": item.uid, "folder": item.folder,
                 "files": len(item.files), "modality": item.modality, "description": item.description,
                 "status": "failed", "reason": None, "warnings": list(item.notes), "outputs": {}, "volumes_ml": {},
                 "timings": {}}
        job = _Job(item, entry)
        previous = None if self.overwrite else previous_entry(out / item.key, self.fingerprint)
        if previous is not None:
            job.entry = {**previous, "status": "skipped", "reason": "already done by a previous run", "timings": {}}
        elif item.error:
            entry["reason"] = item.error
        elif item.kind == "dicom" and item.modality != "CT":
            entry.update(status="skipped", reason=f"not CT (Modality {item.modality or 'missing'})")
        elif item.skip:  # e.g. a localizer series beside the CT
            entry.update(status="skipped", reason=item.skip)
        else:
            (out / item.key / "done.json").unlink(missing_ok=True)  # an outdated result is no longer "done"
            t0 = time.perf_counter()
            try:
                array, job.affine, job.source = read_series(item, self.min_slices)
                entry["warnings"] += getattr(job.source, "notes", [])  # what the reader left out, and why
            except Exception as exc:  # SeriesError/InputError carry the reason; anything else is reported as is
                entry["reason"] = _reason(exc)
                return job
            finally:
                entry["timings"]["read_s"] = _since(t0)
            if array.dtype == np.uint8:  # HU need negative values: an unsigned 8-bit volume is a label map
                entry.update(status="skipped", reason="not CT (an 8-bit unsigned volume, e.g. a label map)")
            else:
                job.array = array
        return job

    def _predict(self, job: _Job) -> None:
        """Run the network (main thread); sets ``job.mask`` (restricted to the chosen organs) or the reason."""
        t0 = time.perf_counter()
        clock = _NetworkClock(self.predictor.model, self.predictor.device)
        try:
            with memory.PeakMemory(self.predictor.device) as peak:
                mask = self.predictor.predict_array(job.array, job.affine)
            job.entry["memory"] = peak.result
        except Exception as exc:
            job.entry["reason"] = f"prediction failed: {_reason(exc)}"
            return
        finally:
            clock.close()
            job.array = None
        keep = np.zeros(256, dtype=bool)
        keep[list(self.labels.values())] = True
        job.mask = np.where(keep[mask], mask, 0).astype(np.uint8)
        job.entry["timings"].update(predict_s=_since(t0), network_s=round(clock.seconds, 3))

    def _finish(self, job: _Job, out: Path) -> dict:
        """Organ volumes, outputs and the done marker (writer thread)."""
        t0, entry, mask, affine = time.perf_counter(), job.entry, job.mask, job.affine
        voxel_ml = abs(float(np.linalg.det(affine[:3, :3]))) / 1000.0
        counts = memory.label_counts(mask)
        entry["volumes_ml"] = {organ: round(float(counts[v]) * voxel_ml, 3) for organ, v in self.labels.items()}
        entry["shape"] = list(mask.shape)
        entry["spacing_mm"] = [round(float(s), 4) for s in np.linalg.norm(affine[:3, :3], axis=0)]
        try:
            entry["outputs"], seg_s, warnings = write_outputs(
                out / job.item.key, job.item.key, mask, affine, job.source, self.formats, self.labels,
                self.model_ref, self.fingerprint)
            entry["warnings"] += warnings
        except Exception as exc:
            entry["reason"] = f"writing outputs failed: {_reason(exc)}"
            return entry
        timings = entry["timings"]
        timings.update(write_s=_since(t0), seg_s=round(seg_s, 3))
        timings["total_s"] = round(timings["read_s"] + timings["predict_s"] + timings["write_s"], 3)
        entry["status"] = "done"
        _write_json(out / job.item.key / "done.json", {"fingerprint": self.fingerprint, "entry": entry})
        return entry


def run_batch(inputs: Sequence[str | Path | SeriesItem], output_dir: str | Path, predictor,
              formats: Sequence[str] = FORMATS, labels: Sequence[str] | None = None, progress: bool = False,
              **kwargs) -> dict:
    """Segment ``inputs`` with a loaded ``predictor`` into ``output_dir``; returns the report (see module doc)."""
    return BatchRunner(predictor, formats=formats, labels=labels, **kwargs).run(inputs, output_dir, progress)
