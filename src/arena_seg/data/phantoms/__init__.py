"""Synthetic abdominal CT phantoms with organ labels (for pretraining and few-shot tests).

Every volume is built from simple analytic shapes (superellipsoids, tubes along splines, layered body wall)
evaluated in an *anatomical* frame that is bent by a smooth random displacement field, so a network sees
CT-like images: air, skin, subcutaneous fat, muscle wall, ribs, spine, lung bases, heart, bowel with gas and
fluid, vessels and the labelled organs, with phase-dependent contrast, texture, blur and noise.

Conventions
-----------
* Arrays are indexed ``(x, y, z)`` and the affine is RAS+ (NIfTI): index ``i`` grows towards the patient's
  Right, ``j`` towards Anterior, ``k`` towards Superior, so ``nibabel.aff2axcodes(affine) == ("R", "A", "S")``.
* The anatomical frame used inside this package has ``+x`` = patient right, ``+y`` = anterior and ``z`` in mm
  above the lowest slice; the liver is at ``+x``, the spleen at ``-x``, the spine at ``-y``.
* ``image`` is int16 Hounsfield units in [-1024, 3071]; ``label`` is uint8 with the ids of ``PHANTOM_LABELS``.

Modules
-------
* ``constants``: label ids, organ groups, phases and tissue HU; ``generator``: :class:`Phantom`,
  :func:`make_phantom` and the seeds; ``params``: the random per-patient choices; ``canvas``: the deformed
  anatomical frame and the painting primitives; ``geometry``: splines, tubes, smooth random fields;
  ``body``, ``bones``, ``bowel``, ``vessels``, ``organs``: the anatomy, painted in that order; ``writer``: files
  on disk.
"""

from __future__ import annotations

from .constants import BASE_ORGANS, NOVEL_ORGANS, PHANTOM_LABELS, PHASES
from .generator import Phantom, label_volumes_ml, make_phantom, phantom_seed
from .params import default_spacing
from .writer import write_phantoms

__all__ = [
    "BASE_ORGANS",
    "NOVEL_ORGANS",
    "PHANTOM_LABELS",
    "PHASES",
    "Phantom",
    "default_spacing",
    "label_volumes_ml",
    "make_phantom",
    "phantom_seed",
    "write_phantoms",
]
