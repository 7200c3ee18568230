"""One sequential pass over SA-1B tars -> source rows, chunked for exactly-once output.

``tarformat.iter_members`` parses a tar from a byte stream (ustar, GNU long names, PAX
headers) without seeking, so a 10 GB shard is one streamed GET. :func:`read_unit` groups consecutive
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
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from directsam.data.sources.fs import TAR_SEP
from directsam.data.sources.objects import (
    ObjectInfo,
    ObjectReadError,
    ReadRetriesExhausted,
    open_object,
)
from directsam.data.sources.shards.layout import chunk_key
from directsam.data.sources.store import StoreOptions
from directsam.data.sources.tarformat import Member, TarDamage, iter_members, wds_key
from directsam.schema import (
    ANNOTATION,
    ANNOTATION_KIND,
    ANNOTATION_MISSING,
    DATASET,
    ERROR,
    IMAGE_BYTES,
    IMAGE_ID,
    LABEL_MODE,
    READ_FAILED,
    SOURCE_URI,
    InputError,
)

IMAGE_EXTS = ("jpg", "jpeg")
ANNOTATION_EXT = "json"
BLOCK = "block"  # str: the output block (chunk) a row belongs to
BLOCK_INFO = "block_info"  # str | None: JSON on the last row of each chunk (see module doc)
# Byte ranges of the members inside their tar (for ranged re-reads of single members).
OFFSET_COLUMNS = ("image_offset", "image_size", "annotation_offset", "annotation_size")


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
        row[BLOCK], row[BLOCK_INFO] = chunk_key(self.unit.name, self.chunk), None
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
