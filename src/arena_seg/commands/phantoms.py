"""`arena-seg phantoms`: write synthetic abdominal CT volumes with organ labels (NIfTI, optionally DICOM)."""

from __future__ import annotations

import argparse

from arena_seg.errors import InputError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("phantoms", help="write synthetic CT phantoms with labels", description=__doc__)
    p.add_argument("--out", required=True, help="output folder (images/, labels/, labels.json, dicom/)")
    p.add_argument("--n", type=int, default=4, help="number of volumes (default 4)")
    p.add_argument("--seed", type=int, default=0, help="seed; the same seed gives the same volumes (default 0)")
    p.add_argument("--dicom", action="store_true", help="also write each volume as a DICOM CT series")
    p.add_argument("--spacing", type=float, nargs=3, metavar=("X", "Y", "Z"), default=None,
                   help="voxel spacing in mm (default: varied, about 1.5×1.5×3)")
    p.add_argument("--prefix", default="phantom", help="file name prefix (default phantom)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from arena_seg.data.phantoms import write_phantoms

    if args.n < 1:
        raise InputError("--n must be ≥ 1")
    names = write_phantoms(args.out, n=args.n, seed=args.seed, dicom=args.dicom,
                           spacing=tuple(args.spacing) if args.spacing else None, prefix=args.prefix)
    print(f"wrote {len(names)} phantoms to {args.out}")
    return 0
