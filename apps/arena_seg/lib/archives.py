"""Extracting an uploaded zip or tar archive (a session upload with ``uncompress=true``) without trusting it.

Stock MONAI Label calls ``shutil.unpack_archive``: a member named ``../../x`` or ``/etc/x`` is written outside
the target, a symlink member points anywhere, and a 300 KB archive may expand to gigabytes. Here every member must
be a plain file or folder with a relative name inside the target, and extraction stops at a size cap counted on
the bytes actually written (headers can lie).
"""

from __future__ import annotations

import os
import shutil
import tarfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import IO

from arena_seg.errors import InputError

MAX_MEMBERS = 10_000
_CHUNK = 1 << 20


def extract_archive(archive: str | Path, dest: str | Path, max_bytes: int) -> Path:
    """Extract ``archive`` (zip, tar, tar.gz/bz2/xz) into the new folder ``dest``; :class:`InputError` for a member
    outside ``dest``, a link or device, more than :data:`MAX_MEMBERS` members, or more than ``max_bytes`` in all
    (what was written is removed)."""
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                members = zf.infolist()
                _check_count(len(members), archive)
                budget = [max_bytes]
                for info in members:
                    target = _target(dest, info.filename, archive)
                    if info.is_dir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    if (info.external_attr >> 16) & 0o170000 == 0o120000:  # a symlink stored in a zip
                        raise InputError(f"archive {archive.name}: member {info.filename!r} is a link; only "
                                         "files and folders are accepted")
                    with zf.open(info) as src:
                        _copy(src, target, budget, archive, max_bytes)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                budget = [max_bytes]
                for count, member in enumerate(tf, start=1):
                    _check_count(count, archive)
                    target = _target(dest, member.name, archive)
                    if member.isdir():
                        target.mkdir(parents=True, exist_ok=True)
                    elif member.isfile():
                        src = tf.extractfile(member)
                        assert src is not None  # a regular file always has data
                        _copy(src, target, budget, archive, max_bytes)
                    else:
                        raise InputError(f"archive {archive.name}: member {member.name!r} is a link or device; "
                                         "only files and folders are accepted")
        else:
            raise InputError(f"{archive.name} is not a zip or tar archive; send uncompress=false for a single "
                             "volume")
    except InputError:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    except (OSError, zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise InputError(f"archive {archive.name} cannot be extracted ({type(exc).__name__}: {exc})") from exc
    return dest


def _check_count(count: int, archive: Path) -> None:
    if count > MAX_MEMBERS:
        raise InputError(f"archive {archive.name} has more than {MAX_MEMBERS} members")


def _target(dest: Path, name: str, archive: Path) -> Path:
    """Where member ``name`` goes: a relative path of plain parts, inside ``dest``."""
    pure = PurePosixPath(name.replace("\\", "/"))
    parts = [p for p in pure.parts if p not in ("", ".")]
    if pure.is_absolute() or not parts or ".." in parts or any("\x00" in p or ":" in p for p in parts):
        raise InputError(f"archive {archive.name}: member {name[:120]!r} would be written outside the upload "
                         "folder; archives must hold relative names only")
    target = dest.joinpath(*parts)
    real_dest = os.path.realpath(dest)
    if not os.path.realpath(target).startswith(real_dest + os.sep):
        raise InputError(f"archive {archive.name}: member {name[:120]!r} leads outside the upload folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def _copy(src: IO[bytes], target: Path, budget: list[int], archive: Path, max_bytes: int) -> None:
    with open(target, "xb") as out:
        while chunk := src.read(_CHUNK):
            budget[0] -= len(chunk)
            if budget[0] < 0:
                raise InputError(f"archive {archive.name} expands to more than {max_bytes / 2**20:.0f} MB (at most "
                                 "50 times its size, and --conf max_upload_mb); send the volumes uncompressed")
            out.write(chunk)
