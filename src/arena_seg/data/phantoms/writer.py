"""Writing phantom sets to disk: NIfTI images and labels, ``labels.json`` and optional DICOM series."""

from __future__ import annotations

from pathlib import Path

from arena_seg.files import write_json, write_nifti

from .constants import PHANTOM_LABELS
from .generator import make_phantom, phantom_seed


def write_phantoms(out: str | Path, n: int, seed: int, dicom: bool = False,
                   spacing: tuple[float, float, float] | None = None, prefix: str = "phantom") -> list[str]:
    """Write ``n`` phantoms: ``out/images/NAME.nii.gz`` (int16 HU), ``out/labels/NAME.nii.gz`` (uint8),
    ``out/labels.json`` ({organ: id}) and, with ``dicom``, ``out/dicom/NAME/`` (one CT series each).

    Volume ``i`` is ``make_phantom(phantom_seed(seed, i), spacing)`` named ``f"{prefix}_{i:03d}"``.
    Returns the names.
    """
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    write_json(out / "labels.json", PHANTOM_LABELS)
    names = []
    for i in range(int(n)):
        name = f"{prefix}_{i:03d}"
        ph = make_phantom(phantom_seed(seed, i), spacing=spacing, name=name)
        write_nifti(out / "images" / f"{name}.nii.gz", ph.image, ph.affine,
                    description=f"arena-seg phantom {ph.meta['phase']}")
        write_nifti(out / "labels" / f"{name}.nii.gz", ph.label, ph.affine)
        if dicom:
            from arena_seg.data.dicom_write import write_dicom_series

            write_dicom_series(ph.image, ph.affine, out / "dicom" / name, patient_id=name,
                               series_description=f"synthetic CT {ph.meta['phase']}", seed=ph.meta["seed"])
        names.append(name)
    return names
