"""All-or-nothing file writes: through a temporary name in the same folder, flushed to disk, then one rename.

Every file arena-seg writes for others to read (networks, adapters, manifests, masks, reports) goes through
:func:`atomic_write`, so a reader (or a process started after a crash) sees the old file or the new one, never
half of the new one.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from arena_seg.errors import InputError

#: suffix of a file being written; the app's datastore sweeps ``*.<pid>.partial`` files whose writer is gone
PARTIAL = ".partial"


def partial_name(path: str | os.PathLike) -> Path:
    """The private folder ``path`` is written in: ``NAME.<random>.<pid>.partial`` beside it.

    Same folder: the rename stays on one file system. The file inside keeps ``path``'s own name, so writers that
    choose the format by suffix (nibabel's ``.nii.gz``, SimpleITK) work unchanged. The random part keeps two
    threads apart, the pid tells a sweep whether the writer still runs, and no volume or JSON pattern matches it.
    """
    path = Path(path)
    return path.with_name(f"{path.name}.{secrets.token_hex(4)}.{os.getpid()}{PARTIAL}")


def _fsync(path: Path, directory: bool = False) -> None:
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        if directory:  # some platforms cannot open a folder; the rename is still atomic there
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)``, flush ``tmp`` to disk, rename it to ``path`` (and flush the folder); returns ``path``.

    ``tmp`` has ``path``'s name, in a private folder beside it; ``write`` must create it (and close it). On any
    error ``path`` is left as it was and the temporary folder removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stage = partial_name(path)
    stage.mkdir()
    try:
        tmp = stage / path.name
        write(tmp)
        _fsync(tmp)  # the data is on disk before the new name points at it (else a crash can leave it empty)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    _fsync(path.parent, directory=True)  # the rename itself survives a crash
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: str | os.PathLike, data: object, *, indent: int | None = 2, **dumps) -> Path:
    """Write ``data`` as JSON (a final newline; ``dumps`` goes to :func:`json.dumps`) to ``path`` atomically.

    The text is made before anything is written, so data that is not JSON-able leaves ``path`` untouched.
    """
    return write_text(path, json.dumps(data, indent=indent, **dumps) + "\n")


def write_nifti(path: str | os.PathLike, array: np.ndarray, affine: np.ndarray, *, dtype: str | np.dtype | None = None,
                description: str | None = None) -> Path:
    """Save a volume (X, Y, Z) with its RAS ``affine`` as NIfTI (qform and sform both scanner, mm), atomically.

    ``dtype`` converts the array first (None: as it is); ``description`` fills the header's ``descrip``.
    """
    import nibabel as nib

    data = np.asarray(array) if dtype is None else np.asarray(array, dtype=dtype)
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm")
    if description is not None:
        img.header["descrip"] = description.encode()[:79]
    return atomic_write(path, lambda tmp: nib.save(img, str(tmp)))


def write_nifti_mask(path: str | os.PathLike, mask: np.ndarray, affine: np.ndarray) -> Path:
    """Save a uint8 mask with its RAS affine (qform and sform, mm units) atomically."""
    return write_nifti(path, mask, affine, dtype=np.uint8)


@contextlib.contextmanager
def staged_output(out: str | Path, force: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``out`` that becomes ``out`` only if the block finishes.

    A failed or interrupted run leaves ``out`` as it was: no half-written models.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not force:
        raise InputError(f"output folder {out} exists and is not empty; choose a new folder or pass --force")
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    if out.exists():
        old = out.with_name(f".{out.name}.old")
        os.replace(out, old)
        os.replace(stage, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(stage, out)
