"""Archive -> folder layout ``root/<stem>/...`` (``sa_000000.tar`` -> ``root/sa_000000/sa_1.jpg``).

Safe by construction: every member name is normalised and refused when absolute, containing
``..``, backslashes or NUL; symlinks and hard links must point inside ``root/<stem>``; writes go
through :class:`Destination`, which also refuses parents that resolve outside (a symlinked
directory planted by an earlier member). Device files and FIFOs are skipped.

Resumable: each finished archive gets ``root/<stem>/_EXTRACTED.json`` (archive name, size,
sha256, member counts). A re-run skips archives whose marker matches, and inside a half-done
folder skips members already written with the right size (each member is written to a temp
name and renamed, so a present file is a whole one).

Tar archives are read as a stream (``r|*``, no seeking: works on S3 input streams too) and
may be plain, gzip, bz2 or xz; zip archives need a seekable reader (local or pyarrow file).
"""

from __future__ import annotations

import json
import posixpath
import re
import stat
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import BinaryIO

from directsam.fetch.destination import Destination
from directsam.fetch.manifest import utc_now

MARKER = "_EXTRACTED.json"
_TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar")
ARCHIVE_SUFFIXES = (*_TAR_SUFFIXES, ".zip")


class UnsafeArchiveError(ValueError):
    """An archive member would be written outside its extraction folder."""


@dataclass(frozen=True)
class ExtractResult:
    """What one call of :func:`extract_archive` did."""

    archive: str
    directory: str
    status: str  # "extracted" | "already"
    written: int = 0  # regular files written now
    resumed: int = 0  # regular files already present with the right size
    bytes_written: int = 0
    links_skipped: int = 0  # symlinks on destinations that cannot hold them
    specials_skipped: int = 0  # devices, FIFOs


def archive_stem(name: str) -> str | None:
    """``"sa_000000.tar"`` -> ``"sa_000000"``; None when ``name`` is not a supported archive."""
    lower = name.lower()
    for suffix in ARCHIVE_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None


def member_path(
    member: str, stem: str, archive: str = "<archive>", is_dir: bool = False
) -> str | None:
    """Normalised ``/``-separated path of ``member`` inside ``root/<stem>``.

    A leading ``./`` and a leading ``<stem>/`` folder are dropped (archives that already wrap
    their content in a folder of their own name are not nested twice). Returns None for
    entries naming the folder itself.

    Raises:
        UnsafeArchiveError: absolute names, ``..`` components, backslashes, NUL bytes.
    """
    why = None
    if "\x00" in member:
        why = "contains NUL"
    elif "\\" in member:
        why = "contains a backslash"
    elif member.startswith("/") or re.match(r"^[A-Za-z]:", member):
        why = "is absolute"
    parts = [p for p in member.split("/") if p not in ("", ".")]
    if why is None and ".." in parts:
        why = "contains '..'"
    if why:
        raise UnsafeArchiveError(f"{archive}: member {member!r} {why}")
    if len(parts) > 1 and parts[0] == stem:
        parts = parts[1:]
    elif parts == [stem] and (is_dir or member.endswith("/")):
        parts = []
    return "/".join(parts) or None


def _link_target(rel: str, target: str, archive: str) -> str:
    """Validate a symlink target relative to the link; it must stay inside the folder."""
    if not target or target.startswith("/") or "\\" in target or "\x00" in target:
        raise UnsafeArchiveError(
            f"{archive}: symlink {rel!r} -> {target!r} is absolute or malformed"
        )
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
    if resolved == ".." or resolved.startswith("../"):
        raise UnsafeArchiveError(f"{archive}: symlink {rel!r} -> {target!r} points outside")
    return target


def extract_archive(
    open_archive: Callable[[], BinaryIO],
    name: str,
    root: Destination,
    *,
    archive_size: int | None = None,
    archive_sha256: str | None = None,
    chunk_size: int = 1 << 20,
) -> ExtractResult:
    """Extract the archive ``name`` into ``root/<stem>/``, resuming a partial extraction.

    Args:
        open_archive: returns a fresh binary reader of the archive (seekable for zip).
        name: the archive's file name (decides the format and the folder name).
        root: the extraction root (local directory or pyarrow-fs URI).
        archive_size, archive_sha256: identity of the archive, stored in / compared with the
            folder's ``_EXTRACTED.json`` marker.

    Raises:
        UnsafeArchiveError: a member would escape the folder; members before it stay written
            (all inside the folder) and no marker is written.
        ValueError: ``name`` has no supported archive suffix.
    """
    stem = archive_stem(name)
    if stem is None:
        raise ValueError(f"{name}: not a supported archive ({', '.join(ARCHIVE_SUFFIXES)})")
    dest = Destination(f"{root.uri.rstrip('/')}/{stem}", root.filesystem, root.staging)
    marker = dest.read_bytes(MARKER)
    if marker is not None and _marker_matches(marker, name, archive_size, archive_sha256):
        return ExtractResult(name, dest.uri, "already")
    # One listing: a resumed extraction skips members already whole. A marker for another
    # version of the archive means those files belong to it: rewrite everything.
    existing = dest.listing("") if marker is None else {}
    counts = {
        "written": 0,
        "resumed": 0,
        "bytes_written": 0,
        "links_skipped": 0,
        "specials_skipped": 0,
    }
    dest.make_dir("")

    def write_file(rel: str, size: int, open_member: Callable[[], BinaryIO]) -> None:
        if existing.get(rel) == size:
            counts["resumed"] += 1
            return
        with open_member() as src:
            counts["bytes_written"] += dest.write_stream(rel, src, chunk_size)
        counts["written"] += 1

    with open_archive() as f:
        if name.lower().endswith(".zip"):
            _extract_zip(f, name, stem, dest, write_file, counts)
        else:
            _extract_tar(f, name, stem, dest, write_file, counts)
    done = {
        "archive": name,
        "size": archive_size,
        "sha256": archive_sha256,
        "files": counts["written"] + counts["resumed"],
        **counts,
        "extracted_at": utc_now(),
    }
    dest.write_bytes(MARKER, (json.dumps(done, indent=1, sort_keys=True) + "\n").encode())
    return ExtractResult(name, dest.uri, "extracted", **counts)


def _extract_tar(f: BinaryIO, name: str, stem: str, dest: Destination, write_file, counts) -> None:
    with tarfile.open(fileobj=f, mode="r|*") as tf:
        for m in tf:
            rel = member_path(m.name, stem, name, is_dir=m.isdir())
            if rel is None:
                continue
            if m.isdir():
                dest.make_dir(rel)
            elif m.isreg():
                write_file(rel, m.size, lambda m=m: tf.extractfile(m))
            elif m.issym():
                target = _link_target(rel, m.linkname, name)
                if not dest.symlink(rel, target):
                    counts["links_skipped"] += 1
            elif m.islnk():
                target_rel = member_path(m.linkname, stem, name)
                if target_rel is None or dest.size(target_rel) is None:
                    raise UnsafeArchiveError(
                        f"{name}: hard link {m.name!r} -> {m.linkname!r} names no earlier file"
                    )
                dest.hardlink(rel, target_rel)
            else:
                counts["specials_skipped"] += 1


def _extract_zip(f: BinaryIO, name: str, stem: str, dest: Destination, write_file, counts) -> None:
    with zipfile.ZipFile(f) as zf:
        infos = zf.infolist()
        # Zip has a central directory: validate every name before writing anything.
        rels = [member_path(i.filename, stem, name, is_dir=i.is_dir()) for i in infos]
        for info, rel in zip(infos, rels):
            if rel is None:
                continue
            mode = info.external_attr >> 16
            if info.is_dir():
                dest.make_dir(rel)
            elif stat.S_ISLNK(mode):
                counts["links_skipped"] += 1  # zip symlinks are rare; never followed
            else:
                write_file(rel, info.file_size, lambda info=info: zf.open(info))


def _marker_matches(data: bytes, name: str, size: int | None, sha256: str | None) -> bool:
    try:
        marker = json.loads(data)
    except ValueError:
        return False
    if marker.get("archive") != name:
        return False
    if sha256 is not None and marker.get("sha256") is not None:
        return marker["sha256"] == sha256
    return size is None or marker.get("size") == size


def result_dict(result: ExtractResult) -> dict:
    """Plain dict of an :class:`ExtractResult` (for JSON summaries)."""
    return asdict(result)
