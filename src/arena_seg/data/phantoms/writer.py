"""Writing phantom sets to disk: NIfTI images and labels, ``labels.json`` and optional DICOM series."""

from __future__ import annotations

import json
from pathlib import Path

from .constants import PHANTOM_LABELS
from .generator import make_phantom, phantom_seed


def write_phantoms(out: str | Path, n: int, seed: int, dicom: bool = False,
                   spacing: tuple[float, float, float] | None = None, prefix: str = "phantom") -> list[str]:
    """Write ``n`` phantoms: ``out/images/NAME.nii.gz`` (int16 HU), ``out/labels/NAME.nii.gz`` (uint8),
    ``out/labels.json`` ({organ: id}) and, with ``dicom``, ``out/dicom/NAME/`` (one CT series each).

    Volume ``i`` is ``make_phantom(phantom_seed(seed, i), spacing)`` named ``f"{prefix}_{i:03d}"``.
    Returns the names.
    """
    import nibabel as nib

    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    (out / "labels.json").write_text(json.dumps(PHANTOM_LABELS, indent=2) + "\n")
    names = []
    for i in range(int(n)):
        name = f"{prefix}_{i:03d}"
        ph = make_phantom(phantom_seed(seed, i), spacing=spacing, name=name)
        for arr, sub in ((ph.image, "images"), (ph.label, "labels")):
            nii = nib.Nifti1Image(arr, ph.affine)
            nii.set_qform(ph.affine, code=1)
            nii.set_sform(ph.affine, code=1)
            nii.header.set_xyzt_units("mm")
            if sub == "images":
                nii.header["descrip"] = f"arena-seg phantom {ph.meta['phase']}".encode()[:79]
            nib.save(nii, str(out / sub / f"{name}.nii.gz"))
        if dicom:
            from arena_seg.data.dicom_write import write_dicom_series

            write_dicom_series(ph.image, ph.affine, out / "dicom" / name, patient_id=name,
                               series_description=f"synthetic CT {ph.meta['phase']}", seed=ph.meta["seed"])
        names.append(name)
    return names
