"""Synthetic CT from real label maps (SynthSeg-style), for training the foundation network: see :mod:`.generator`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .classmap import totalseg_v2_classes
from .generator import Synthetic, SynthOptions, synthesize

__all__ = ["SynthOptions", "Synthetic", "synthesize", "totalseg_v2_classes", "to_ras", "write_synthetic"]


def to_ras(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``array`` (X, Y, Z) reordered and flipped so its axes run R, A, S, with the matching affine."""
    import nibabel as nib

    ornt = nib.orientations.io_orientation(affine)
    ras = nib.orientations.axcodes2ornt("RAS")
    transform = nib.orientations.ornt_transform(ornt, ras)
    out = nib.orientations.apply_orientation(array, transform)
    inv = nib.orientations.inv_ornt_aff(transform, array.shape)
    return np.ascontiguousarray(out), np.asarray(affine, float) @ inv


def write_synthetic(label_path: str | Path, out: str | Path, n: int, seed: int, image_path: str | Path | None = None,
                    source_phase: str = "non_contrast", classes: dict[int, str] | None = None,
                    prefix: str = "synth", options: SynthOptions | None = None) -> list[str]:
    """Write ``n`` scans made from one label map: ``out/images/NAME.nii.gz`` (int16 HU), ``out/labels/NAME.nii.gz``
    (uint8, the phantoms' organ ids), ``out/labels.json`` and ``out/synth.json`` (what each scan drew).

    Scan ``i`` uses seed ``(seed, i)``; ``image_path`` makes hybrids (the real scan warped and re-enhanced).
    ``classes`` names the label map's ids (default TotalSegmentator v2). Returns the names.
    """
    from arena_seg.data.phantoms import phantom_seed
    from arena_seg.data.volumes import check_label, read_volume
    from arena_seg.files import write_json, write_nifti
    from arena_seg.organs import PHANTOM_LABELS

    lab = read_volume(label_path, "label")
    label, affine = to_ras(np.asarray(lab.array), lab.affine)
    image = None
    if image_path is not None:
        img = read_volume(image_path, "image")
        check_label(img, lab)
        image, _ = to_ras(np.asarray(img.array, np.float32), img.affine)
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    write_json(out / "labels.json", PHANTOM_LABELS)
    names, record = [], {}
    for i in range(int(n)):
        name = f"{prefix}_{i:03d}"
        s = synthesize(label.astype(np.int16), affine, classes or totalseg_v2_classes(), phantom_seed(seed, i),
                       image=image, source_phase=source_phase, options=options)
        write_nifti(out / "images" / f"{name}.nii.gz", s.image, s.affine,
                    description=f"arena-seg synthetic CT {s.meta['phase']}")
        write_nifti(out / "labels" / f"{name}.nii.gz", s.label, s.affine)
        record[name] = {**s.meta, "source": Path(label_path).name}
        names.append(name)
    write_json(out / "synth.json", record)
    return names
