"""Atomic publication of files and directories: a reader sees the old version or the whole new
one, never a part, and a crash mid-write leaves the old version in place.

Files (:func:`write_atomic`) are written to a hidden temp sibling ``.<name>.tmp-<12 hex>`` and
renamed onto the final name: one ``rename`` on a local disk (it replaces an existing file
atomically on POSIX) or the filesystem's move elsewhere (HDFS, the in-memory stand-ins tests
use). Object stores (S3, GCS, Azure) make an object visible only when its upload completes, so
there the final key is written directly with one PUT or multipart upload: a temp key would cost
a server-side copy of every byte for nothing. Nothing is fsync'ed: a killed process never leaves
a partial file, an operating-system crash may (every caller re-creates what it writes).

Directories (:func:`atomic_dir`, :func:`publish_dir`; local disks only) are filled under a
hidden temp sibling and renamed into place. Two directories cannot be swapped in one rename, so
an existing one is first renamed aside: the window without a valid directory is two renames.

Temp names start with ``.`` (``directsam.data.sources.fs.list_files`` and Parquet dataset
readers skip them) and hold :data:`TEMP_MARK`, so :func:`remove_temp_files` can sweep what a
killed writer left. This module imports nothing from ``directsam``: every layer may use it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

TEMP_MARK = ".tmp-"
# pyarrow ``FileSystem.type_name`` of stores whose uploads appear whole or not at all.
OBJECT_STORES = frozenset({"s3", "gcs", "abfs"})

Writer = Callable[[BinaryIO], object]


def temp_name(name: str) -> str:
    """Hidden, unique temp name for ``name``: ``.part-1.parquet.tmp-0123456789ab``."""
    return f".{name}{TEMP_MARK}{uuid.uuid4().hex[:12]}"


def write_atomic(
    path: str | os.PathLike[str], data: bytes | Writer, *, filesystem: Any = None
) -> int:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one.

    Args:
        path: a local path (``filesystem`` None), or a path inside ``filesystem`` (for S3
            ``"bucket/key"``; ``directsam.data.sources.fs.resolve`` turns a URI into both).
        data: the bytes, or a function that writes them to the binary stream it is given
            (``lambda fh: torch.save(state, fh)``), so large payloads are not held twice.
        filesystem: a ``pyarrow.fs.FileSystem``; None is the local disk.

    Returns:
        The number of bytes written.

    A temp file left by a writer that fails is removed. On an object store a ``data`` function
    that raises after writing some bytes leaves no object at ``path``: pyarrow cannot abort an
    upload, so the partial object it completes is deleted (the old version, if any, is lost).
    """
    import pyarrow.fs as pafs

    if filesystem is None:
        filesystem, path = pafs.LocalFileSystem(), os.path.abspath(os.fspath(path))
    path = os.fspath(path)
    parent, _, name = path.rpartition("/")
    if parent:
        filesystem.create_dir(parent, recursive=True)
    if filesystem.type_name in OBJECT_STORES:
        return _put(filesystem, path, data)
    tmp = f"{parent}/{temp_name(name)}" if parent else temp_name(name)
    try:
        # compression=None: pyarrow would otherwise compress a stream named ``*.gz``.
        with filesystem.open_output_stream(tmp, compression=None) as out:
            written = _fill(out, data)
        filesystem.move(tmp, path)
    except BaseException:
        _delete_quietly(filesystem, tmp)
        raise
    return written


def _fill(out: Any, data: bytes | Writer) -> int:
    if callable(data):
        data(out)
    else:
        out.write(data)
    return int(out.tell())


def _put(filesystem: Any, path: str, data: bytes | Writer) -> int:
    out = filesystem.open_output_stream(path, compression=None)
    try:
        written = _fill(out, data)
    except BaseException:
        out.close()  # completes the upload: pyarrow exposes no abort...
        _delete_quietly(filesystem, path)  # ...so the partial object goes
        raise
    out.close()
    return written


def _delete_quietly(filesystem: Any, path: str) -> None:
    try:
        filesystem.delete_file(path)
    except OSError:  # never created, or already gone
        pass


def remove_temp_files(directory: str | os.PathLike[str], *, filesystem: Any = None) -> int:
    """Delete the temp files :func:`write_atomic` left in ``directory`` (not below it) when its
    writer was killed; returns how many. Only safe while no writer is running there."""
    import pyarrow.fs as pafs

    if filesystem is None:
        filesystem, directory = pafs.LocalFileSystem(), os.path.abspath(os.fspath(directory))
    selector = pafs.FileSelector(os.fspath(directory), allow_not_found=True)
    stale = [
        info.path
        for info in filesystem.get_file_info(selector)
        if info.type == pafs.FileType.File
        and info.base_name.startswith(".")
        and TEMP_MARK in info.base_name
    ]
    for path in stale:
        filesystem.delete_file(path)
    return len(stale)


def publish_dir(staging: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Rename the finished directory ``staging`` to ``target`` (same filesystem), replacing any
    ``target``: the old one is renamed aside first, then deleted."""
    staging, target = Path(staging), Path(target)
    if not (target.exists() or target.is_symlink()):
        os.replace(staging, target)
        return
    old = target.parent / temp_name(target.name)
    os.replace(target, old)
    os.replace(staging, target)
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink(missing_ok=True)


@contextmanager
def atomic_dir(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty hidden sibling of ``target`` to fill; on success it becomes ``target``
    (:func:`publish_dir`), on an exception it is deleted and ``target`` is left as it was."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}{TEMP_MARK}", dir=target.parent))
    try:
        yield tmp
        publish_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
