"""The fetch manifest: ``<output>/_MANIFEST.json``, the record of which files are whole.

One JSON object, rewritten atomically by the driver after every finished file (single writer),
so an interrupted run keeps everything it completed. A file counts as present when it has a
record here AND the file on the destination has the recorded size (plus, with
``verify="checksum"``, the recorded SHA-256); links-file sizes/checksums must agree too.

Format (version 1)::

    {"format": "directsam-fetch-manifest", "version": 1, "updated_at": "2026-...Z",
     "files": {"sa_000000.tar": {"name": "sa_000000.tar", "size": 10612633600,
                                 "sha256": "9f8e...", "md5": null,
                                 "url": "https://scontent.xx.fbcdn.net/.../sa_000000.tar",
                                 "fetched_at": "2026-...Z"}}}

``url`` is stored without its query string: SA-1B links carry signed, expiring tokens that
should not travel with a manifest.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from directsam.fetch.destination import Destination
from directsam.fetch.links import MANIFEST_NAME, LinkEntry, validate_name

FORMAT = "directsam-fetch-manifest"
VERSION = 1


class ManifestError(RuntimeError):
    """The manifest exists but cannot be read; refusing to guess (it may guard terabytes)."""


@dataclass(frozen=True)
class FileRecord:
    """One whole, verified file on the destination."""

    name: str
    size: int
    sha256: str
    url: str
    fetched_at: str
    md5: str | None = None


def utc_now() -> str:
    """``2026-05-09T07:35:25Z`` (seconds precision, UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Manifest:
    """In-memory manifest: ``name -> FileRecord``; :meth:`save` writes it atomically."""

    def __init__(self, records: dict[str, FileRecord] | None = None):
        self.records: dict[str, FileRecord] = dict(records or {})

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[FileRecord]:
        return iter(self.records[k] for k in sorted(self.records))

    def get(self, name: str) -> FileRecord | None:
        return self.records.get(name)

    def put(self, record: FileRecord) -> bool:
        """Insert or replace; returns True when the manifest changed."""
        if self.records.get(record.name) == record:
            return False
        self.records[record.name] = record
        return True

    def remove(self, name: str) -> bool:
        return self.records.pop(name, None) is not None

    def to_json(self) -> str:
        files = {r.name: asdict(r) for r in self}
        doc = {"format": FORMAT, "version": VERSION, "updated_at": utc_now(), "files": files}
        return json.dumps(doc, indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str = MANIFEST_NAME) -> Manifest:
        try:
            doc = json.loads(text)
            if doc.get("format") != FORMAT or doc.get("version") != VERSION:
                raise ValueError(f"format/version {doc.get('format')!r}/{doc.get('version')!r}")
            records = {name: FileRecord(**rec) for name, rec in doc["files"].items()}
        except (ValueError, TypeError, KeyError, AttributeError) as err:
            raise ManifestError(
                f"{where}: unreadable fetch manifest ({err}); move it away to rebuild it "
                "(local files are then re-checked with a Range request, not re-downloaded)"
            ) from err
        for name, rec in records.items():
            if rec.name != name:
                raise ManifestError(f"{where}: record key {name!r} holds name {rec.name!r}")
            try:  # names are joined to the destination root: same rule as links files
                validate_name(name, where)
            except ValueError as err:
                raise ManifestError(str(err)) from None
        return cls(records)

    @classmethod
    def load(cls, dest: Destination) -> Manifest:
        """The destination's manifest, or an empty one when there is none yet."""
        data = dest.read_bytes(MANIFEST_NAME)
        if data is None:
            return cls()
        return cls.from_json(data.decode("utf-8"), where=dest.describe(MANIFEST_NAME))

    def save(self, dest: Destination) -> None:
        dest.write_bytes(MANIFEST_NAME, self.to_json().encode("utf-8"))


def check_record(
    entry: LinkEntry,
    record: FileRecord | None,
    dest: Destination,
    verify: str = "size",
    chunk_size: int = 1 << 20,
) -> str | None:
    """Why ``entry`` must be (re)fetched, or None when the destination holds it whole.

    Args:
        verify: ``"size"`` (stat only: cheap on 10 TB) or ``"checksum"`` (re-hash the file).

    Returns:
        None when present and consistent; otherwise a short reason for the progress line.
    """
    if record is None:
        return "not in manifest"
    size = dest.size(entry.name)
    if size is None:
        return "missing"
    if size != record.size:
        return f"size {size} != manifest {record.size}"
    if entry.size is not None and entry.size != record.size:
        return f"manifest size {record.size} != links file {entry.size}"
    if entry.sha256 is not None and entry.sha256 != record.sha256:
        return "manifest sha256 differs from links file"
    if entry.md5 is not None and record.md5 is not None and entry.md5 != record.md5:
        return "manifest md5 differs from links file"
    if verify == "checksum" or (entry.md5 is not None and record.md5 is None):
        sha, md5 = hash_file(
            dest, entry.name, want_md5=entry.md5 is not None, chunk_size=chunk_size
        )
        if sha != record.sha256:
            return "sha256 of file != manifest"
        if entry.md5 is not None and md5 != entry.md5:
            return "md5 of file != links file"
    return None


def hash_file(
    dest: Destination, rel: str, want_md5: bool = False, chunk_size: int = 1 << 20
) -> tuple[str, str | None]:
    """(sha256 hex, md5 hex or None) of a destination file, streamed."""
    sha = hashlib.sha256()
    md5 = hashlib.md5(usedforsecurity=False) if want_md5 else None
    with dest.open_read(rel) as f:
        while chunk := f.read(chunk_size):
            sha.update(chunk)
            if md5 is not None:
                md5.update(chunk)
    return sha.hexdigest(), md5.hexdigest() if md5 is not None else None
