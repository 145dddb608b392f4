"""What batch inference reads and writes per series: the input volume, the outputs (NIfTI mask, labels, DICOM SEG),
the done marker a rerun checks, and the run's report with its one-line summary."""

from __future__ import annotations

import datetime as _dt
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from arena_seg import __version__
from arena_seg.errors import InputError
from arena_seg.files import write_json, write_nifti_mask
from arena_seg.inference.batch_inputs import SeriesItem

REPORT_VERSION = 1


def read_series(item: SeriesItem, min_slices: int = 3) -> tuple[np.ndarray, np.ndarray, object | None]:
    """``(array, affine, source)`` of a series; ``source`` is the read DicomSeries (None for NIfTI)."""
    if item.kind == "nifti":
        from arena_seg.data.volumes import read_volume

        vol = read_volume(item.files[0])
        return vol.array, vol.affine, None
    from arena_seg.data.dicom_read import read_dicom_series

    series = read_dicom_series(item.files, min_slices=min_slices)
    return series.array, series.affine, series


def previous_entry(folder: Path, fingerprint: dict) -> dict | None:
    """The report entry of an earlier run's result in ``folder``, if its fingerprint matches and its files exist."""
    marker = folder / "done.json"
    if not marker.is_file():
        return None
    try:
        data = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    entry = data.get("entry", {})
    outputs = [folder.parent / p for p in entry.get("outputs", {}).values()]
    if data.get("fingerprint") != fingerprint or not all(p.is_file() for p in outputs):
        return None
    return entry


def write_outputs(folder: Path, key: str, mask: np.ndarray, affine: np.ndarray, source, formats: Sequence[str],
                  labels: dict[str, int], model_ref: str, fingerprint: dict) -> tuple[dict, float, list[str]]:
    """Write the requested outputs of series ``key``; returns their paths (relative to the output folder), the
    SEG's seconds and warnings. A SEG that cannot reference its source is left out with a warning, and the NIfTI
    mask is written in its place when it was not asked for: a mask that was made is never lost to the SEG."""
    from arena_seg.data.dicom_seg import seg_left_out_reason, write_segmentation

    outputs, seg_start, warnings = {}, None, []
    want_seg = "seg" in formats and source is not None
    why = seg_left_out_reason(source) if want_seg else None

    def nifti() -> None:
        write_nifti_mask(folder / "mask.nii.gz", mask, affine)
        write_json(folder / "labels.json", labels)
        outputs.update(nifti=f"{key}/mask.nii.gz", labels=f"{key}/labels.json")

    if "nifti" in formats or source is None or why:
        nifti()
    if want_seg and not why:
        seg_start = time.perf_counter()
        try:
            write_segmentation(folder / "seg.dcm", source, mask, labels, model_name=model_ref,
                               uid_seed=json.dumps(fingerprint, sort_keys=True))
            outputs["seg"] = f"{key}/seg.dcm"
        except Exception as exc:  # highdicom refuses what the source's headers hold
            why = f"it could not be built from the source's headers ({reason(exc)})"
            if "nifti" not in outputs:
                nifti()
    if why:
        warnings.append(f"DICOM SEG left out: {why}" + ("" if "nifti" in formats else
                                                       "; the mask was written as NIfTI instead"))
    return outputs, (time.perf_counter() - seg_start if seg_start else 0.0), warnings


def build_report(entries: list[dict], inputs, out: Path, world: int, seconds: float, model: dict,
                 formats: Sequence[str]) -> dict:
    """The run's report (``OUTPUT/report.json``): the model, counts per status, throughput and every entry."""
    counts = {s: sum(e["status"] == s for e in entries) for s in ("done", "skipped", "failed")}
    return {
        "version": REPORT_VERSION, "tool": f"arena-seg {__version__}",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "inputs": [str(p) for p in inputs], "output": str(out), "model": model,
        "formats": list(formats), "world_size": world,
        "summary": {"total": len(entries), **counts, "seconds": round(seconds, 2),
                    "series_per_minute": round(counts["done"] * 60.0 / max(seconds, 1e-9), 2)},
        "series": entries,
    }


def summary_line(report: dict) -> str:
    """One line: counts, time, throughput and where the report is."""
    s = report["summary"]
    line = (f"{s['total']} series: {s['done']} done, {s['skipped']} skipped, {s['failed']} failed in "
            f"{s['seconds']:.1f} s ({s['series_per_minute']:.1f} series/min); report: "
            f"{Path(report['output']) / 'report.json'}")
    failed = [e for e in report["series"] if e["status"] == "failed"]
    if failed:
        line += "; failed: " + "; ".join(f"{e['folder']} ({e['reason']})" for e in failed[:5])
    warned = sum(bool(e.get("warnings")) for e in report["series"])
    if warned:
        line += f"; {warned} with warnings (see the report)"
    return line


def reason(exc: BaseException) -> str:
    """An exception as one line for the report: our own errors' text, anything else with its type."""
    from arena_seg.data.dicom_read import SeriesError

    if isinstance(exc, SeriesError | InputError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def since(t0: float) -> float:
    return round(time.perf_counter() - t0, 3)
