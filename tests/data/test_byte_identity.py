"""Refactoring guard: phantoms and DICOM series are byte-identical to what the code wrote before it was split.

The reference hashes were computed before ``_vessels_and_organs``, ``_bones`` and ``write_dicom_series`` were
split into smaller functions (issue 17). They pin this platform's numpy/scipy arithmetic: after a deliberate
change of the anatomy or the DICOM tags, recompute them with ``_phantom_digest``/``_series_digest``.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from arena_seg.data.dicom_write import write_dicom_series
from arena_seg.data.phantoms import make_phantom

SPACING = (6.0, 6.0, 8.0)

# seed, forced phase (None: drawn from the seed), sha256 of image + label + affine
PHANTOMS = [
    (0, None, "f4d3ff13336e8e73c3a9759bdbeff9edb1b934cc8cd28dc04df2a561f64cb2d9"),
    (1, None, "a2855c9a5342fa96816313e85adb364d4048228049760bedc1864d16e0bc8a46"),
    (2, None, "7bf5b73e8fa602dafe4d7a5fe8b9803f9d7a78d62e16044ab75f78d7c232c12a"),
    (4, None, "69e6a9a536e8a4f81d00f2900a8e0ca56847091a6ade2786a27a8c9eb7b54338"),
    (5, None, "d24cd7da4d98cfde11c655221b8a3c16bd954e062cb1bc1690564a0ab8f0d934"),
    (9, None, "a580d922857bc6e259a22fe60bfb0cdca603ff2e8bb17b45858a0ea17c9a55cb"),
    (11, None, "ead5d51d2387dab522e3bab1ea21f2d92b599acbf8f3eee9775d0b33966c66f7"),
    (5, "non_contrast", "6eb2860fb194d49eba6dae30d9cb8752ad92b9eec925ca124135cee0ab12b8a7"),
    (11, "arterial", "5ea5be531d3c9a131f58e2ac5aafde7e3339dc9c37dde861afd5282553c1f645"),
]

# radiological, affine (None: the phantom's), sha256 of the file names and bytes
SERIES = [
    (True, None, "d29c9722d14da5cd13c38069e4274b466c7f508c985cfede61fe33865512aab1"),
    (False, None, "e47e49a9091dc966cd777b5c1a8acf2cd2b604119ff2ac104b3c5fd7e1ddfdfc"),
    (True, np.diag([-2.0, 2.0, 3.0, 1.0]), "167c5de169e5bbc89e7662f95b314b93f4e47b5d9c01d16377c461118ac91d68"),
]


def _phantom_digest(seed: int, phase: str | None) -> str:
    p = make_phantom(seed, spacing=SPACING, phase=phase)
    h = hashlib.sha256()
    for a in (p.image, p.label, p.affine):
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _series_digest(out_dir, radiological: bool, affine: np.ndarray | None) -> str:
    p = make_phantom(3, spacing=SPACING)
    paths = write_dicom_series(p.image[:, :, :5], p.affine if affine is None else affine, out_dir,
                               patient_id="P1", seed=4, radiological=radiological)
    h = hashlib.sha256()
    for path in paths:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize(("seed", "phase", "digest"), PHANTOMS)
def test_phantom_arrays_unchanged(seed, phase, digest):
    assert _phantom_digest(seed, phase) == digest


@pytest.mark.parametrize(("radiological", "affine", "digest"), SERIES)
def test_dicom_series_bytes_unchanged(tmp_path, radiological, affine, digest):
    assert _series_digest(tmp_path, radiological, affine) == digest
