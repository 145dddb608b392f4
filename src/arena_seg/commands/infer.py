"""`arena-seg infer`: segment every CT series (DICOM, any folder layout) and NIfTI file under a folder.

Writes OUTPUT/<series>/mask.nii.gz, labels.json and seg.dcm (DICOM SEG) per series, and OUTPUT/report.json.
Exit code 0 when every series succeeded (or was skipped), 1 when some failed, 2 for bad arguments.
Scale out with torchrun: `torchrun --nproc_per_node N -m arena_seg.cli infer ...` (or `--no-python arena-seg infer`).
"""

from __future__ import annotations

import argparse
import sys

from arena_seg.errors import InputError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("infer", help="batch-segment DICOM series and NIfTI files in a folder",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", action="append", default=None, metavar="DIR",
                   help="folder (searched recursively) or file; repeat for several")
    p.add_argument("--output", default=None, metavar="DIR", help="output folder (created)")
    p.add_argument("--model", default="default",
                   help="default, a foundation name, a model/version folder, or library:DIR (an organ library)")
    p.add_argument("--checkpoint", default=None, help="weights for fseft-swinunetr / monai-wholebody")
    p.add_argument("--labels", default=None, metavar="NAME,...", help="keep only these organs of the model")
    p.add_argument("--format", default="nifti,seg", help="nifti, seg or nifti,seg (default nifti,seg)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto; cuda:LOCAL_RANK under torchrun)")
    p.add_argument("--min-slices", type=int, default=3, help="skip series with fewer slices (default 3)")
    p.add_argument("--overwrite", action="store_true", help="redo series already done by a previous run")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _csv(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    return items or None


def check_args(args: argparse.Namespace) -> tuple[list[str], list[str] | None]:
    """Validate what needs no model; returns (formats, labels). Raises InputError (exit 2, one line)."""
    from pathlib import Path

    from arena_seg.inference.batch import FORMATS

    if not args.input:
        raise InputError("--input DIR is required")
    if not args.output:
        raise InputError("--output DIR is required")
    for item in args.input:
        if not Path(item).exists():
            raise InputError(f"--input {item} does not exist")
    if Path(args.output).exists() and not Path(args.output).is_dir():
        raise InputError(f"--output {args.output} is a file; give a folder")
    formats = _csv(args.format) or []
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise InputError(f"--format {args.format}: choose nifti, seg or nifti,seg")
    if args.min_slices < 1:
        raise InputError("--min-slices must be at least 1")
    return formats, _csv(args.labels)


def run(args: argparse.Namespace) -> int:
    formats, labels = check_args(args)
    import warnings

    from arena_seg.inference import distributed
    from arena_seg.inference.batch import BatchRunner, collect_inputs, summary_line

    for category in (FutureWarning, DeprecationWarning):  # library deprecation notes are not for this user
        warnings.filterwarnings("ignore", category=category)
    warnings.filterwarnings("ignore", message="Using a non-tuple sequence|Setting affine")
    # rank 0 finds the series before any model is loaded (a bad folder fails fast) and shares the list
    items = collect_inputs(args.input, exclude=[args.output]) if distributed.env_world()[0] == 0 else []
    device = distributed.init_distributed(args.device)
    try:
        items = distributed.broadcast(items)
        if not items:
            raise InputError(f"no DICOM series or NIfTI files found in {', '.join(args.input)}")
        runner = BatchRunner.from_model(args.model, args.checkpoint, device=device, formats=formats, labels=labels,
                                        min_slices=args.min_slices, overwrite=args.overwrite)
        report = runner.run(items, args.output, progress=not args.no_progress and sys.stderr.isatty(),
                            sources=args.input)
    except KeyboardInterrupt:
        print("arena-seg infer: interrupted; finished series are kept, a rerun continues", file=sys.stderr)
        return 130
    finally:
        distributed.finalize()
    if distributed.env_world()[0] == 0:
        print(summary_line(report))
    return 1 if report["summary"]["failed"] else 0
