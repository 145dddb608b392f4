"""Helpers for the batch-inference tests: copying, renaming, compressing and editing DICOM series."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file

PYDICOM_CT5N = Path(get_testdata_file("CT_small.dcm")).parent / "dicomdirtests" / "98892001" / "CT5N"


def copy_series(src: Path, dst: Path, rename: bool = False, rle: bool = False, **changes) -> list[Path]:
    """Copy a series; ``rename`` gives the files opaque names, ``rle`` compresses them (RLE Lossless);
    ``changes`` set tags (with a new SeriesInstanceUID, so the copy is a series of its own)."""
    from pydicom.uid import RLELossless

    dst.mkdir(parents=True, exist_ok=True)
    uid = pydicom.uid.generate_uid() if changes else None
    out = []
    for i, f in enumerate(sorted(src.iterdir())):
        target = dst / (f"{(i * 37) % 101:03d}X{i}" if rename else f.name)
        if uid is None and not rle:
            shutil.copy(f, target)
        else:
            ds = pydicom.dcmread(f)
            if uid is not None:
                ds.SeriesInstanceUID = uid
                ds.SOPInstanceUID = pydicom.uid.generate_uid()
            for key, value in changes.items():
                setattr(ds, key, value)
            if rle:
                ds.compress(RLELossless)
            ds.save_as(target)
        out.append(target)
    return out
