"""The organs a server learns and their ids in stored labels: the organ library's registry (``organs.json``).

``--conf labels`` come first (ids 1..n on a new server). A saved final label may name a new organ (a segment's name
in ``label_info`` or the ``.seg.nrrd`` header): it then gets the next id, kept for good, so the organ can be trained
without restarting the server. Stored labels hold these ids, so a label saved today and one saved after other organs
were added agree, and a run for one organ reads every label that contains it (:mod:`lib.datastore`).

A segment name does not make a new organ when it is one of the foundation's own organs (segments Slicer got from its
result, not something drawn to learn; configure them with ``--conf labels`` to relearn them), one of Slicer's
default names (``Segment_1``) or not a plain name (letters, digits, spaces, ``_`` and ``-``, up to 64).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from arena_seg.errors import InputError
from arena_seg.library import OrganLibrary
from lib.conf import norm_name

MAX_ID = 254  #: stored labels are uint8 (0 is background, 255 left free)
_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_GENERIC = re.compile(r"(segment|label|background|unknown|other)(_?\d+)?")


class OrganRegistry:
    """Organ names and ids of one server: ``--conf labels`` (``configured``), then organs added by labels."""

    def __init__(self, arena_dir: str | Path, configured: Iterable[str] = (), foundation: Iterable[str] = ()) -> None:
        self.library = OrganLibrary(arena_dir)
        self.configured = tuple(configured)
        self.foundation = frozenset(norm_name(n) for n in foundation)

    def ids(self) -> dict[str, int]:
        """{organ: id in stored labels}; the configured organs are recorded first."""
        return self.library.assign_ids(list(self.configured))

    @staticmethod
    def find(name: str, known: Iterable[str]) -> str | None:
        """The organ of ``known`` that ``name`` names (case-, space- and underscore-insensitively), or None."""
        wanted = norm_name(name)
        return next((organ for organ in known if norm_name(organ) == wanted), None)

    def organ_for(self, name: str, known: dict[str, int]) -> str | None:
        """The organ a segment called ``name`` is: a known one (any spelling), a new one, or None (see module doc)."""
        organ = self.find(name, known)
        if organ is not None:
            return organ
        new = norm_name(name)
        if _NAME.fullmatch(new) and not _GENERIC.fullmatch(new) and new not in self.foundation:
            return new
        return None

    def assign(self, organs: Iterable[str]) -> dict[str, int]:
        """Ids for ``organs`` (new ones recorded in organs.json); InputError when no id is left."""
        organs = list(organs)
        known = self.ids()
        new = [o for o in organs if o not in known]
        if new and max(known.values(), default=0) + len(new) > MAX_ID:
            raise InputError(f"the organ library holds {len(known)} organs and has no id left for "
                             f"{', '.join(new)} (at most {MAX_ID}); rename the segment after a known organ")
        ids = self.library.assign_ids([*self.configured, *organs])
        return {o: ids[o] for o in organs}

    def describe(self, known: dict[str, int] | None = None) -> str:
        """What the error messages list: the organs known so far."""
        known = self.ids() if known is None else known
        return ", ".join(known) or "none yet"
