"""Helpers shared by subcommands, now in library modules; re-exported here for callers not yet moved.

``arena_seg.bench.fewshot`` still imports them from here (it is being reworked for issue 14); new code imports
:mod:`arena_seg.data.pairing` and :func:`arena_seg.files.staged_output`.
"""

from __future__ import annotations

from arena_seg.data.pairing import list_volumes, pair_volumes, parse_organs, volume_stem
from arena_seg.files import staged_output

__all__ = ["list_volumes", "pair_volumes", "parse_organs", "staged_output", "volume_stem"]
