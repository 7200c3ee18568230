"""Where fetched and extracted files land: a local directory or a ``pyarrow.fs`` URI (s3://, gs://).

Local destinations keep ``<name>.part`` next to the final file and publish with ``os.replace``
(atomic on one filesystem). Remote destinations cannot append or rename cheaply, so the part
file lives in a local staging directory (where Range resume works) and the verified file is
streamed up with ``open_output_stream``; object stores make an object visible only when its
upload completes, so readers never see half an archive there either. Other files (extracted
members, the manifest, markers) go through ``directsam.atomic.write_atomic``.

Paths passed to the methods are relative, ``/``-separated and already validated by the caller
(link names by :mod:`directsam.fetch.links`, archive members by :mod:`directsam.fetch.extract`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from directsam.atomic import write_atomic


class UnsafePathError(ValueError):
    """A write would land outside the destination root (e.g. through a symlinked directory)."""


@dataclass
class Destination:
    """A root directory on the local disk or on a ``pyarrow.fs`` filesystem.

    Attributes:
        uri: the root as given (``/data/sa1b``, ``s3://bucket/sa1b``).
        filesystem: an explicit ``pyarrow.fs.FileSystem`` (tests, custom credentials); None
            resolves ``uri`` with ``FileSystem.from_uri`` in each process that needs it, so
            Ray workers use their own node's credentials.
        staging: local directory for part files of remote destinations (default: a folder
            under the system temp dir named after ``uri``).
    """

    uri: str
    filesystem: Any = None
    staging: str | None = None
    _resolved: Any = field(default=None, init=False, repr=False, compare=False)

    @property
    def is_local(self) -> bool:
        if self.filesystem is not None:
            return False
        return "://" not in self.uri or self.uri.startswith("file://")

    @property
    def local_root(self) -> Path:
        """Absolute local root (only for local destinations)."""
        assert self.is_local
        raw = self.uri[len("file://") :] if self.uri.startswith("file://") else self.uri
        return Path(os.path.abspath(os.path.expanduser(raw)))

    def __getstate__(self) -> dict[str, Any]:
        # Resolved S3/GCS clients are rebuilt per process, not shipped to Ray workers.
        state = dict(self.__dict__)
        state["_resolved"] = None
        return state

    # --------------------------------------------------------------------- remote plumbing

    def _fs(self) -> tuple[Any, str]:
        if self.filesystem is not None:
            return self.filesystem, self.uri.rstrip("/")
        if self._resolved is None:
            import pyarrow.fs as pafs

            self._resolved = pafs.FileSystem.from_uri(self.uri)
        fs, base = self._resolved
        return fs, base.rstrip("/")

    def _remote(self, rel: str) -> tuple[Any, str]:
        fs, base = self._fs()
        return fs, f"{base}/{rel}" if base else rel

    # --------------------------------------------------------------------- queries

    def local_path(self, rel: str) -> Path:
        """``root/rel`` for local destinations."""
        return self.local_root.joinpath(*rel.split("/"))

    def part_path(self, name: str) -> Path:
        """Local part file for ``name``: beside it when local, in staging when remote."""
        if self.is_local:
            return self.local_path(name + ".part")
        if self.staging:
            staging = Path(self.staging)
        else:
            key = hashlib.sha1(self.uri.encode(), usedforsecurity=False).hexdigest()[:12]
            staging = Path(tempfile.gettempdir()) / "directsam-fetch" / key
        return staging / (name + ".part")

    def describe(self, rel: str) -> str:
        """Human-readable location of ``rel`` for messages."""
        return str(self.local_path(rel)) if self.is_local else f"{self.uri.rstrip('/')}/{rel}"

    def size(self, rel: str) -> int | None:
        """Size in bytes of the file ``rel``, or None when absent (or not a regular file)."""
        if self.is_local:
            path = self.local_path(rel)
            return path.stat().st_size if path.is_file() and not path.is_symlink() else None
        import pyarrow.fs as pafs

        fs, path = self._remote(rel)
        info = fs.get_file_info(path)
        return info.size if info.type == pafs.FileType.File else None

    def listing(self, rel_dir: str) -> dict[str, int]:
        """Regular files under ``rel_dir`` (recursive) -> size; paths relative to ``rel_dir``."""
        if self.is_local:
            root = self.local_path(rel_dir)
            if not root.is_dir():
                return {}
            return {
                p.relative_to(root).as_posix(): p.stat().st_size
                for p in root.rglob("*")
                if p.is_file() and not p.is_symlink()
            }
        import pyarrow.fs as pafs

        fs, path = self._remote(rel_dir)
        infos = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
        # Some filesystems (fsspec wrappers) answer with a leading "/"; S3 does not.
        prefix = len(path.strip("/")) + 1
        return {i.path.lstrip("/")[prefix:]: i.size for i in infos if i.type == pafs.FileType.File}

    def open_read(self, rel: str) -> BinaryIO:
        """Seekable binary reader (no transparent decompression)."""
        if self.is_local:
            return open(self.local_path(rel), "rb")
        fs, path = self._remote(rel)
        return fs.open_input_file(path)

    def read_bytes(self, rel: str) -> bytes | None:
        if self.size(rel) is None:
            return None
        with self.open_read(rel) as f:
            return f.read()

    # --------------------------------------------------------------------- writes

    def commit_part(self, name: str, part: Path, chunk_size: int = 1 << 20) -> None:
        """Publish a verified part file as ``name`` (local: atomic rename; remote: upload)."""
        if self.is_local:
            os.replace(part, self.local_path(name))
            return
        fs, path = self._remote(name)
        _ensure_remote_parent(fs, path)
        # compression=None: pyarrow would otherwise gzip a stream whose name ends in .gz.
        with open(part, "rb") as src, fs.open_output_stream(path, compression=None) as dst:
            shutil.copyfileobj(src, dst, chunk_size)
        uploaded, expected = self.size(name), part.stat().st_size
        if uploaded != expected:
            raise OSError(f"{self.describe(name)}: uploaded {uploaded} bytes, part has {expected}")
        part.unlink()

    def write_stream(self, rel: str, src: BinaryIO, chunk_size: int = 1 << 20) -> int:
        """Copy ``src`` to ``rel`` atomically (``directsam.atomic.write_atomic``: tmp + rename
        locally, one upload on object stores); returns bytes written."""

        def copy(dst: BinaryIO) -> None:
            shutil.copyfileobj(src, dst, chunk_size)

        if self.is_local:
            return write_atomic(self._checked_local(rel), copy)
        fs, path = self._remote(rel)
        return write_atomic(path, copy, filesystem=fs)

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Atomic small write (manifest, markers)."""
        import io

        self.write_stream(rel, io.BytesIO(data))

    def remove(self, rel: str) -> None:
        if self.is_local:
            self.local_path(rel).unlink(missing_ok=True)
            return
        fs, path = self._remote(rel)
        if self.size(rel) is not None:
            fs.delete_file(path)

    def make_dir(self, rel: str) -> None:
        if self.is_local:
            path = self.local_path(rel)
            _require_inside(os.path.realpath(path), self.local_root, rel)
            path.mkdir(parents=True, exist_ok=True)
            return
        fs, path = self._remote(rel)
        fs.create_dir(path, recursive=True)

    def symlink(self, rel: str, target: str) -> bool:
        """Create the symlink ``rel -> target`` (relative); False where links cannot exist."""
        if not self.is_local:
            return False
        path = self._checked_local(rel)
        resolved = os.path.realpath(os.path.join(path.parent, target))
        _require_inside(resolved, self.local_root, rel)
        if path.is_symlink() or path.exists():
            path.unlink()
        os.symlink(target, path)
        return True

    def hardlink(self, rel: str, target_rel: str) -> None:
        """Make ``rel`` a copy of the already-written ``target_rel`` (a hard link locally)."""
        if self.is_local:
            path = self._checked_local(rel)
            source = self.local_path(target_rel)
            _require_inside(os.path.realpath(source), self.local_root, rel)
            if path.exists() or path.is_symlink():
                path.unlink()
            os.link(source, path, follow_symlinks=False)
            return
        fs, path = self._remote(rel)
        fs.copy_file(self._remote(target_rel)[1], path)

    def _checked_local(self, rel: str) -> Path:
        """``root/rel`` with its parent created, refusing parents that resolve outside root."""
        path = self.local_path(rel)
        # realpath follows symlinked directories an archive may have planted earlier; check
        # before mkdir (which would follow them too) and again after (races, odd mounts).
        _require_inside(os.path.realpath(path.parent), self.local_root, rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        _require_inside(os.path.realpath(path.parent), self.local_root, rel)
        return path


def _require_inside(resolved: str, root: Path, rel: str) -> None:
    root_real = os.path.realpath(root)
    if resolved != root_real and not resolved.startswith(root_real + os.sep):
        raise UnsafePathError(f"{rel!r} resolves to {resolved!r}, outside {root_real!r}")


def _ensure_remote_parent(fs: Any, path: str) -> None:
    parent = path.rsplit("/", 1)[0] if "/" in path else ""
    if parent:
        fs.create_dir(parent, recursive=True)
