"""`arena-seg`: few-shot CT organ segmentation with ARENA adapters, from the command line."""

from __future__ import annotations

import argparse
import sys

from arena_seg.commands import (
    adapters,
    bench,
    demo,
    evaluate,
    finetune,
    infer,
    phantoms,
    predict,
    pretrain,
    serve,
    synth,
)
from arena_seg.errors import InputError
from arena_seg.models.checkpoint import CheckpointError

COMMANDS = (phantoms, synth, pretrain, finetune, predict, evaluate, demo, infer, adapters, serve, bench)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="arena-seg", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a subcommand. Bad data or options exit with 2 and one line naming the problem (no usage text)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (InputError, FileNotFoundError, CheckpointError) as exc:
        message = " ".join(str(exc).split())  # one line, even when a library's own message spans several
        print(f"arena-seg {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"arena-seg {args.command}: interrupted; nothing was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
