"""`arena-seg adapters`: an organ library's learned organs, and moving one organ's adapter between servers.

  arena-seg adapters list   --library DIR
  arena-seg adapters export --library DIR --organ NAME [--version vNNN] --out FOLDER
  arena-seg adapters import --library DIR --from FOLDER [--foundation MODEL]

DIR is a library (a server's ``<model_dir>/arena``). An import is refused when the adapter was trained on another
foundation network than the library's (the adapter records the foundation weights' sha256). A library without an
adapter yet records no foundation: name the server's foundation with --foundation (as --model takes it: default,
or a network folder) to check the first import too.
"""

from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("adapters", help="list, export and import the organs of an organ library",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=("list", "export", "import"))
    p.add_argument("--library", required=True, metavar="DIR", help="the library (a server's <model_dir>/arena)")
    p.add_argument("--organ", default=None, help="export: the organ")
    p.add_argument("--version", default=None, help="export: a version of the organ (default: its latest)")
    p.add_argument("--out", default=None, metavar="FOLDER", help="export: a new folder")
    p.add_argument("--from", dest="source", default=None, metavar="FOLDER", help="import: an exported folder")
    p.add_argument("--foundation", default=None, metavar="MODEL",
                   help="import: the foundation the library serves (checked even when the library holds no adapter)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from arena_seg.errors import InputError
    from arena_seg.library import OrganLibrary

    library = OrganLibrary(args.library)
    if args.action == "list":
        print(json.dumps(library.entries(), indent=2))
        return 0
    if args.action == "export":
        if not args.organ or not args.out:
            raise InputError("adapters export needs --organ NAME and --out FOLDER")
        out = library.export(args.organ, args.out, args.version)
        print(f"exported {args.organ} to {out}")
        return 0
    if not args.source:
        raise InputError("adapters import needs --from FOLDER (a folder written by adapters export)")
    sha256 = _foundation_sha256(args.foundation, args.source) if args.foundation else None
    version = library.import_(args.source, sha256)
    print(f"imported {', '.join(version.organs)} as {version.id} into {library.root}")
    return 0


def _foundation_sha256(ref: str, source: str) -> str | None:
    """sha256 of ``ref``'s weights as the exported adapter hashes its foundation (its trainable head left out)."""
    import warnings
    from pathlib import Path

    path = Path(source) / "adapter.json"
    if not path.is_file():
        return None  # a run without adapters: nothing to compare
    trainable = tuple(json.loads(path.read_text()).get("config", {}).get("trainable") or ())
    with warnings.catch_warnings():  # MONAI's import warnings: the command answers in one line
        warnings.simplefilter("ignore")
        from arena_seg.adapters.io import base_weights_sha256
        from arena_seg.inference.loading import load_model

        model, _ = load_model(ref)
    return base_weights_sha256(model, trainable)
