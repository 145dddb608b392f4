"""The organ library: every good run on one foundation network, served together (:mod:`.store`, :mod:`.combine`)."""

from __future__ import annotations

from typing import Any

from arena_seg.errors import InputError
from arena_seg.library.store import OrganLibrary, Version, check_foundation

__all__ = ["LibraryPredictor", "OrganLibrary", "Version", "check_foundation", "library_foundation", "output_ids"]


def __getattr__(name: str) -> Any:
    """The serving side (torch, MONAI) is imported when first used: `arena-seg adapters` reads and copies folders
    only, and answers (or refuses an import) without loading either, or printing their import warnings."""
    if name in ("LibraryPredictor", "output_ids"):
        from arena_seg.library import combine

        return getattr(combine, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def library_foundation(library: OrganLibrary) -> str:
    """The foundation network the library's versions were trained from (as ``--model`` names it)."""
    versions = library.versions()
    if not versions:
        raise InputError(f"{library.root} holds no finished version (versions/vNNN with manifest.json and network/)")
    refs = {str(v.manifest.get("foundation_ref") or v.manifest.get("foundation") or "") for v in versions}
    if len(refs) != 1 or "" in refs:
        raise InputError(f"{library.root}: versions name foundations {sorted(refs)}; a library has one")
    return refs.pop()
