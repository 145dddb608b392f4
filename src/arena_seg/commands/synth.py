"""`arena-seg synth`: synthetic CT scans made from a real label map (SynthSeg-style), for pretraining."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from arena_seg.errors import InputError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="synthetic CT from a real label map (for pretraining)", description=__doc__)
    p.add_argument("--label", required=True, help="a full label map (e.g. TotalSegmentator's), NIfTI/NRRD")
    p.add_argument("--out", required=True, help="output folder (images/, labels/, labels.json, synth.json)")
    p.add_argument("--n", type=int, default=8, help="number of scans (default 8)")
    p.add_argument("--seed", type=int, default=0, help="the same seed gives the same scans (default 0)")
    p.add_argument("--image", help="the CT the label map was drawn on: make hybrids (its voxels warped and "
                                   "re-enhanced) instead of fully synthetic scans")
    p.add_argument("--source-phase", default="non_contrast", choices=("non_contrast", "arterial", "portal_venous"),
                   help="contrast phase of --image (default non_contrast)")
    p.add_argument("--classes", help="JSON {id: name} of the label map (default: TotalSegmentator v2's classes)")
    p.add_argument("--prefix", default="synth", help="file name prefix (default synth)")
    p.add_argument("--gallery", metavar="PNG", help="also draw the first scans into this PNG (beside the real "
                                                    "scan: --image, or --compare)")
    p.add_argument("--compare", metavar="IMAGE", help="the real scan drawn first in --gallery (default --image)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from arena_seg.data.synth import write_synthetic

    if args.n < 1:
        raise InputError("--n must be ≥ 1")
    classes = None
    if args.classes:
        try:
            classes = {int(k): str(v) for k, v in json.loads(Path(args.classes).read_text()).items()}
        except (OSError, ValueError, AttributeError) as exc:
            raise InputError(f"--classes {args.classes}: not a JSON object of id → name ({exc})") from None
    names = write_synthetic(args.label, args.out, args.n, args.seed, image_path=args.image,
                            source_phase=args.source_phase, classes=classes, prefix=args.prefix)
    print(f"wrote {len(names)} synthetic scans to {args.out}")
    if args.gallery:
        from arena_seg.data.synth.gallery import write_gallery

        real = args.compare or args.image
        shown = [("real", real)] if real else []
        shown += [(name, Path(args.out) / "images" / f"{name}.nii.gz") for name in names[: 6 - len(shown)]]
        print(f"wrote {write_gallery(args.gallery, shown)}")
    return 0
