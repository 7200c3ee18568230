"""One sequential pass over SA-1B tars -> source rows, chunked for exactly-once output.

:func:`iter_members` parses a tar from a byte stream (ustar, GNU long names, PAX headers)
without seeking, so a 10 GB shard is one streamed GET. :func:`read_unit` groups consecutive
members by webdataset key (``sa_1.jpg`` + ``sa_1.json``) into one row per image and cuts the
rows of a *unit* (a tar, or for ``--num-samples`` the first tars in order) into chunks of
``chunk_rows`` images: chunk ``c`` of unit ``u`` is block ``"<u>-<c:05d>"``, written to
``part-<u>-<c:05d>.parquet``. The last row of every chunk carries ``block_info`` (JSON): the
chunk's row count, its start and end position (tar index, byte offset), whether the unit ends
there (``final``) and, after a read that failed for good, where a re-run must resume
(``retry``). The driver knows a chunk is complete when it holds that many rows, and a re-run
restarts an unfinished unit with one ranged GET at the recorded offset.

Damage never drops rows silently: a member cut short fails its image's row (``read_failed``
naming the byte), a corrupt header or a tar that ends without its end-of-archive marker adds a
row ``<tar stem>@<offset>`` naming the damage, and a stream that outlasts every retry adds a
row ``<tar stem>@<offset>`` (the images from there on are unknown until a re-run reads them).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from directsam.data.sources.objects import (
    ObjectInfo,
    ObjectReadError,
    ReadRetriesExhausted,
    open_object,
)
from directsam.data.sources.store import StoreOptions
from directsam.schema import (
    ANNOTATION,
    ANNOTATION_KIND,
    ANNOTATION_MISSING,
    DATASET,
    ERROR,
    IMAGE_BYTES,
    IMAGE_ID,
    READ_FAILED,
    SOURCE_URI,
    InputError,
)

BLOCK_SIZE = 512
_ZERO = bytes(BLOCK_SIZE)
IMAGE_EXTS = ("jpg", "jpeg")
ANNOTATION_EXT = "json"
TAR_SEP = "::"
BLOCK = "block"  # str: the output block (chunk) a row belongs to
BLOCK_INFO = "block_info"  # str | None: JSON on the last row of each chunk (see module doc)
LABEL_MODE = "label_mode"
# Byte ranges of the members inside their tar (for ranged re-reads of single members).
OFFSET_COLUMNS = ("image_offset", "image_size", "annotation_offset", "annotation_size")


class TarDamage(Exception):
    """The tar cannot be parsed past ``offset``; ``member`` is the member being read, if any."""

    def __init__(self, offset: int, reason: str, member: str | None = None):
        self.offset, self.reason, self.member = offset, reason, member
        super().__init__(f"{reason} (at byte {offset})")


@dataclass
class Member:
    """One regular file of a tar: its header offset (first extension header included), data
    range, the offset right after its padding, and its bytes when they were asked for."""

    name: str
    offset: int
    data_offset: int
    size: int
    end: int
    data: bytes | None


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = stream.read(n - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _skip(stream: BinaryIO, n: int) -> int:
    skipped = 0
    while skipped < n:
        chunk = stream.read(min(n - skipped, 1 << 20))
        if not chunk:
            break
        skipped += len(chunk)
    return skipped


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _number(field: bytes) -> int:
    """A numeric header field: octal text, or GNU base-256 when the high bit is set."""
    if field[0] & 0x80:
        value = int.from_bytes(field[1:], "big")
        return value - (1 << (8 * len(field) - 1)) if field[0] & 0x40 else value
    text = field.replace(b"\0", b" ").strip()
    return int(text, 8) if text else 0


def _checksum_ok(header: bytes) -> bool:
    try:
        stored = _number(header[148:156])
    except ValueError:
        return False
    blanked = header[:148] + b" " * 8 + header[156:]
    unsigned = sum(blanked)  # C-level sum over bytes; the signed variant only when it differs
    if stored == unsigned:
        return True
    return stored == unsigned - 256 * sum(1 for b in blanked if b > 127)


def _pax_records(data: bytes) -> dict[str, str]:
    out, pos = {}, 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            break
        length = int(data[pos:space])
        if length <= 0:
            break
        key, _, value = data[space + 1 : pos + length - 1].partition(b"=")
        out[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return out


def iter_members(
    stream: BinaryIO, offset: int = 0, want: Callable[[str], bool] = lambda name: True
) -> Iterator[Member]:
    """Regular files of a tar read sequentially from ``stream`` positioned at ``offset``.

    ``offset`` must be a header boundary. Data of members ``want`` rejects is skipped (still
    read, never requested separately). Ends at the end-of-archive marker.

    Raises:
        TarDamage: a corrupt or truncated header, member data cut short, or no end marker.
    """
    pos = offset
    long_name: str | None = None
    pax: dict[str, str] = {}
    first: int | None = None  # offset of the current member's first (extension) header
    while True:
        header = _read_exact(stream, BLOCK_SIZE)
        if not header:
            raise TarDamage(pos, "the tar ends without its end-of-archive marker (truncated?)")
        if len(header) < BLOCK_SIZE:
            raise TarDamage(pos, f"the tar is cut inside a header ({len(header)} of 512 bytes)")
        if header == _ZERO:
            return
        if not _checksum_ok(header):
            raise TarDamage(pos, "corrupt tar header (checksum mismatch)")
        start = pos if first is None else first
        typeflag = header[156:157]
        try:
            size = int(pax["size"]) if "size" in pax else _number(header[124:136])
        except ValueError:
            raise TarDamage(pos, "corrupt tar header (size field)") from None
        data_offset = pos + BLOCK_SIZE
        end = data_offset + -(-size // BLOCK_SIZE) * BLOCK_SIZE
        if typeflag in (b"L", b"K", b"x", b"g"):  # GNU long name/link, PAX headers
            data = _read_exact(stream, end - data_offset)
            if len(data) < end - data_offset:
                raise TarDamage(data_offset + len(data), "the tar is cut inside a header")
            if typeflag == b"L":
                long_name = _text(data[:size])
            elif typeflag == b"x":
                pax.update(_pax_records(data[:size]))
            first, pos = start, end
            continue
        name = long_name or pax.get("path")
        if name is None:
            name = _text(header[0:100])
            prefix = _text(header[345:500]) if header[257:263] == b"ustar\x00" else ""
            name = f"{prefix}/{name}" if prefix else name
        long_name, pax, first = None, {}, None
        regular = typeflag in (b"0", b"\0", b"7")
        try:
            data, end = _member_data(stream, name, regular, regular and want(name), size, end)
        except ObjectReadError as err:  # name whose bytes were lost: a resume starts at `start`
            err.member, err.member_start = (name, start) if regular else (None, None)
            raise
        if regular:
            yield Member(name, start, data_offset, size, end, data)
        pos = end


def _member_data(
    stream: BinaryIO, name: str, regular: bool, keep: bool, size: int, end: int
) -> tuple[bytes | None, int]:
    """Read (``keep``) or skip one member's data and padding; (data, offset after it).

    Raises:
        TarDamage: the data is cut short.
    """
    data_offset = end - -(-size // BLOCK_SIZE) * BLOCK_SIZE
    if keep:
        data = _read_exact(stream, size)
        if len(data) < size:
            got = len(data)
            raise TarDamage(data_offset + got, f"{name} is cut short ({got} of {size} bytes)", name)
        padding = _skip(stream, end - data_offset - size)
        if padding < end - data_offset - size:  # the member is whole; the tar ends here
            end = data_offset + size + padding
        return data, end
    got = _skip(stream, end - data_offset)
    if got < size:
        who = name if regular else None
        raise TarDamage(data_offset + got, f"{name} is cut short ({got} of {size} bytes)", who)
    return None, end


def wds_key(name: str) -> tuple[str, str]:
    """webdataset grouping: ``dir/sa_1.jpg`` -> (``dir/sa_1``, ``jpg``) (split at the first dot)."""
    head, base = os.path.split(name)
    key, _, ext = base.partition(".")
    return (f"{head}/{key}" if head else key), ext.lower()


def tar_stem(uri: str) -> str:
    base = uri.rstrip("/").rsplit("/", 1)[-1]
    return base[:-4] if base.lower().endswith(".tar") else base


def _want(name: str) -> bool:
    return wds_key(name)[1] in (*IMAGE_EXTS, ANNOTATION_EXT)


# ----------------------------------------------------------------------------- units


@dataclass(frozen=True)
class TarUnit:
    """A unit of work: tars read in order from a position, cut into chunks.

    Attributes:
        name: unit name (the tar's stem; ``head`` for a ``--num-samples`` selection).
        tars: the objects, read in this order.
        start_tar, start_offset: where reading starts (a header boundary).
        start_chunk: index of the first chunk written by this read.
        filled: rows chunk ``start_chunk`` already holds (kept from an earlier run).
        limit: most rows the unit yields in total (``--num-samples``), else all.
    """

    name: str
    tars: tuple[ObjectInfo, ...]
    start_tar: int = 0
    start_offset: int = 0
    start_chunk: int = 0
    filled: int = 0
    limit: int | None = None

    @property
    def size(self) -> int:
        """Bytes left to read."""
        left = sum(t.size for t in self.tars[self.start_tar :])
        return left - self.start_offset


def block_key(unit: str, chunk: int) -> str:
    return f"{unit}-{chunk:05d}"


@dataclass
class _Chunker:
    """Numbers rows into chunks and puts ``block_info`` on each chunk's last row.

    The newest row is held back until the next one arrives (or the unit ends), so the last
    row of the unit can say ``final`` without an extra marker row.
    """

    unit: TarUnit
    chunk_rows: int
    out: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.chunk, self.count = self.unit.start_chunk, self.unit.filled
        self.start = [self.unit.start_tar, self.unit.start_offset]
        self.end = list(self.start)
        self.held: dict[str, Any] | None = None
        self.rows = self.unit.start_chunk * self.chunk_rows + self.unit.filled

    def push(self, row: dict[str, Any], end: tuple[int, int]) -> None:
        self._flush(final=False)
        if self.count == self.chunk_rows:
            self.chunk, self.count, self.start = self.chunk + 1, 0, list(self.end)
        self.count += 1
        self.rows += 1
        row[BLOCK], row[BLOCK_INFO] = block_key(self.unit.name, self.chunk), None
        self.held, self.end = row, list(end)

    def move_end(self, end: tuple[int, int]) -> None:
        """The held row is the last of its tar: a resume after it starts at ``end``."""
        self.end = list(end)

    def _flush(self, final: bool, retry: tuple[int, int] | None = None) -> None:
        if self.held is None:
            return
        row, self.held = self.held, None
        if final or self.count == self.chunk_rows:
            info = {
                "rows": self.count,
                "start": self.start,
                "end": self.end,
                "final": final and retry is None,
                "retry": list(retry) if retry is not None else None,
            }
            row[BLOCK_INFO] = json.dumps(info)
        self.out.append(row)

    def finish(self, retry: tuple[int, int] | None = None) -> None:
        self._flush(final=True, retry=retry)

    def take(self) -> list[dict[str, Any]]:
        out, self.out = self.out, []
        return out


def _row(
    image_id: str,
    uri: str,
    dataset: str,
    image: bytes | None = None,
    annotation: bytes | None = None,
    error: str | None = None,
    offsets: tuple[int, int, int, int] = (-1, -1, -1, -1),
) -> dict[str, Any]:
    row = {
        IMAGE_ID: image_id,
        SOURCE_URI: uri,
        DATASET: dataset,
        IMAGE_BYTES: image,
        ANNOTATION: annotation,
        ANNOTATION_KIND: "sa1b",
        LABEL_MODE: "",
        ERROR: error,
    }
    row.update(zip(OFFSET_COLUMNS, offsets, strict=True))
    return row


def _image_id(key: str) -> tuple[str, str | None]:
    from directsam.data.sa1b import sa1b_image_id

    try:
        return sa1b_image_id(key), None
    except InputError as err:
        return key.rsplit("/", 1)[-1], str(err)


def _group_row(tar: str, members: dict[str, Member], key: str, dataset: str) -> dict | None:
    """The row of one image group, or None for a group without an image (a lone JSON)."""
    image = next((members[e] for e in IMAGE_EXTS if e in members), None)
    if image is None:
        return None
    uri = f"{tar}{TAR_SEP}{image.name}"
    image_id, bad_name = _image_id(key)
    ann = members.get(ANNOTATION_EXT)
    offsets = (
        image.data_offset,
        image.size,
        ann.data_offset if ann else -1,
        ann.size if ann else -1,
    )
    if bad_name:
        return _row(image_id, uri, dataset, error=bad_name, offsets=offsets)
    if ann is None:
        error = f"{ANNOTATION_MISSING}: {uri}: no {key}.json in the tar"
        return _row(image_id, uri, dataset, error=error, offsets=offsets)
    return _row(image_id, uri, dataset, image.data, ann.data, offsets=offsets)


def _damage_row(tar: ObjectInfo, offset: int, detail: str, dataset: str) -> dict[str, Any]:
    uri = f"{tar.uri}@{offset}"
    error = f"{READ_FAILED}: {tar.uri}: {detail}"
    return _row(f"{tar_stem(tar.uri)}@{offset}", uri, dataset, error=error)


def read_unit(
    unit: TarUnit,
    dataset: str,
    store: StoreOptions,
    chunk_rows: int,
    *,
    with_data: bool = True,
    batch_rows: int = 16,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[list[dict[str, Any]]]:
    """Stream ``unit`` and yield its rows in lists of up to ``batch_rows``.

    Every image met yields one row (good, or failed with ``read_failed`` /
    ``annotation_missing``); damage and exhausted retries add the rows described in the module
    docstring. ``with_data=False`` reads the same stream but keeps no bytes (listing).
    """
    chunker = _Chunker(unit, chunk_rows)
    seen: set[str] = set()

    def push(row: dict[str, Any] | None, end: tuple[int, int]) -> None:
        if row is None:
            return
        if row[IMAGE_ID] in seen:  # a repeated key would be a second row for one id
            offset = row[OFFSET_COLUMNS[0]]
            row[IMAGE_ID] = f"{row[IMAGE_ID]}@{offset}"
            row[IMAGE_BYTES] = row[ANNOTATION] = None
            row[ERROR] = f"{READ_FAILED}: {row[SOURCE_URI]}: the key appears twice in the tar"
        seen.add(row[IMAGE_ID])
        chunker.push(row, end)

    def full() -> bool:  # chunker.rows counts the unit's rows, earlier runs' included
        return unit.limit is not None and chunker.rows >= unit.limit

    want = _want if with_data else (lambda name: False)
    for t in range(unit.start_tar, len(unit.tars)):
        tar = unit.tars[t]
        offset = unit.start_offset if t == unit.start_tar else 0
        key: str | None = None
        members: dict[str, Member] = {}
        group_start = pos = offset
        try:
            with open_object(tar, offset, store, sleep) as stream:
                for m in iter_members(stream, offset, want):
                    k, ext = wds_key(m.name)
                    if key is not None and k != key:
                        push(_group_row(tar.uri, members, key, dataset), (t, m.offset))
                        key, members = None, {}
                        if full():
                            break
                    if key is None:
                        key, members, group_start = k, {}, m.offset
                    members[ext] = m
                    pos = m.end
                    if len(chunker.out) >= batch_rows:
                        yield chunker.take()
                else:
                    if key is not None:
                        push(_group_row(tar.uri, members, key, dataset), (t, pos))
                        key = None
        except ReadRetriesExhausted as err:
            # The unfinished group is re-read by the re-run; everything after is unknown. A
            # group is finished once the next key's member starts, even if that member failed.
            failed, failed_at = getattr(err, "member", None), getattr(err, "member_start", None)
            if key is not None and failed is not None and wds_key(failed)[0] != key:
                push(_group_row(tar.uri, members, key, dataset), (t, failed_at))
                key = None
                pos = failed_at
            at = group_start if key is not None else pos
            push(
                _damage_row(tar, at, f"read failed from byte {at}: {err.detail}", dataset), (t, at)
            )
            chunker.finish(retry=(t, at))
            yield chunker.take()
            return
        except (TarDamage, ObjectReadError) as err:
            at = err.offset
            reason = err.reason if isinstance(err, TarDamage) else err.detail
            damaged = getattr(err, "member", None)
            damaged_key = wds_key(damaged)[0] if damaged else None
            if key is not None and damaged_key != key:
                push(_group_row(tar.uri, members, key, dataset), (t, group_start))
                key = None
            if damaged_key is not None:
                image_id, _ = _image_id(damaged_key)
                uri = f"{tar.uri}{TAR_SEP}{damaged}"
                push(_row(image_id, uri, dataset, error=f"{READ_FAILED}: {uri}: {reason}"), (t, at))
            else:
                push(_damage_row(tar, at, reason, dataset), (t, at))
        if full():
            break
        chunker.move_end((t + 1, 0))
    chunker.finish()
    rows = chunker.take()
    if rows:
        yield rows
