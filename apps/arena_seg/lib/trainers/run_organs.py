"""What a training run learns: the ``organs`` train option checked against the labels the datastore holds, and the
version a warm-started run continues from."""

from __future__ import annotations

from typing import Any

from arena_seg.errors import InputError
from arena_seg.library import Version
from lib.organs import OrganRegistry


def run_organs(requested: tuple[str, ...], registry: OrganRegistry, datastore: Any) -> dict[str, int]:
    """{organ: id in the stored labels} of a run: ``requested`` (or ``--conf labels`` when empty), each one an organ
    that at least one final label contains; InputError naming the organ otherwise."""
    contained = datastore.label_organs()
    known = registry.ids()
    listing = ", ".join(f"{o} ({len(ids)} scan(s))" for o, ids in sorted(contained.items())) or "no organ yet"
    names = requested or registry.configured
    if not names:
        raise InputError("no organs to learn: this server has no --conf labels, so name the organ(s) in the train "
                         f"option organs; the datastore's final labels contain: {listing}")
    out: dict[str, int] = {}
    for name in names:
        organ = registry.find(name, known)
        if organ is None:
            raise InputError(f"train option organs: unknown organ {name!r}; the datastore's final labels contain: "
                             f"{listing} (save a label with a segment named after a new organ to add it)")
        if organ not in contained:
            labelled, total = len(datastore.get_labeled_images()), len(datastore.list_images())
            raise InputError(f"no final label contains {organ} yet ({labelled} of {total} scans labelled): draw the "
                             f"organ on at least one scan and save it, then train; final labels contain: {listing}")
        out[organ] = known[organ]
    return out


def warm_source(versions: dict[str, Version], organs: list[str]) -> Version:
    """The version a warm start of ``organs`` continues from: the one serving them all (``versions``: the library's
    {organ: latest good version}); InputError when there is none."""
    missing = [o for o in organs if o not in versions]
    if missing:
        raise InputError(f"train option warm_start: {', '.join(missing)} has no version to start from yet; train "
                         "it once without warm_start")
    served = {versions[o].id for o in organs}
    if len(served) > 1:
        raise InputError(f"train option warm_start: {', '.join(organs)} are served by different versions "
                         f"({', '.join(sorted(served))}); warm-start them one at a time")
    version = versions[organs[0]]
    if not (version.folder / "adapter.safetensors").is_file():
        raise InputError(f"train option warm_start: {version.id} (method {version.manifest.get('method')}) has no "
                         "adapter to start from; train with method arena or lora first")
    return version
