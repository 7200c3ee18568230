"""Block plans and atomic Parquet shard writes: block ``key`` -> ``part-<key>.parquet``.

A block is what one shard holds: for listed sources block ``k`` of the sorted ids
(key ``000042``), for tar sources chunk ``c`` of a tar (key ``sa_000042-00003``); the names
and the folder are the shard store's (``directsam.data.sources.shards.layout``). Each block is
written once, whole and atomically (``directsam.atomic.write_atomic``), with its key, a hash of
its ids and (tar chunks) the chunk's positions in the Parquet metadata. A re-run skips every
finished block, so an interrupted run plus a re-run gives exactly the rows of an uninterrupted
one. The one exception is a tar chunk
whose read failed for good after every retry: it is written with the rows read so far plus a
row naming the failure, and a re-run reads the rest and replaces it atomically.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from directsam.data.sources import fs
from directsam.data.sources.shards.layout import listed_key, part_name, write_file
from directsam.schema import (
    CHECKPOINT,
    CHECKPOINT_SHA,
    DATASET,
    ERROR,
    HEIGHT,
    HUMAN_BOUNDARY,
    IMAGE_ID,
    PSEUDO_BOUNDARY,
    RESOLUTION,
    SCHEMA_VERSION,
    SCHEMA_VERSION_COL,
    SOURCE_URI,
    THICKNESS,
    THRESHOLD,
    WIDTH,
    rle_arrow_type,
)

META_BLOCK = b"directsam.block"
META_IDS_SHA = b"directsam.ids_sha256"
META_ROWS = b"directsam.num_rows"
META_CHUNK = b"directsam.chunk"  # tar chunks: JSON {unit, rows, start, end, final, retry, ...}


class PlanMismatchError(ValueError):
    """An existing shard does not hold the block the current plan expects (input changed)."""


@dataclass(frozen=True)
class BlockPlan:
    """Block ``key`` (``part-<key>.parquet``): its ``image_ids`` in order and their hash."""

    key: str
    image_ids: tuple[str, ...]

    @property
    def ids_sha(self) -> str:
        return ids_sha256(self.image_ids)


def ids_sha256(image_ids: Iterable[str]) -> str:
    """SHA-256 of the ids, each followed by a newline (the ``ids_sha256`` of plans and parts)."""
    digest = hashlib.sha256()
    for image_id in image_ids:
        digest.update(image_id.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def plan_blocks(image_ids: list[str], rows_per_shard: int) -> list[BlockPlan]:
    """Cut sorted ids into consecutive blocks of ``rows_per_shard`` (the last may be short)."""
    return [
        BlockPlan(listed_key(k), tuple(image_ids[start : start + rows_per_shard]))
        for k, start in enumerate(range(0, len(image_ids), rows_per_shard))
    ]


def shard_schema() -> Any:
    """Arrow schema of a labeled shard (the contract in DESIGN.md)."""
    import pyarrow as pa

    rle = rle_arrow_type()
    return pa.schema(
        [
            (IMAGE_ID, pa.string()),
            (SOURCE_URI, pa.string()),
            (DATASET, pa.string()),
            (HEIGHT, pa.int32()),
            (WIDTH, pa.int32()),
            (RESOLUTION, pa.int32()),
            (PSEUDO_BOUNDARY, rle),
            (HUMAN_BOUNDARY, rle),
            (CHECKPOINT, pa.string()),
            (CHECKPOINT_SHA, pa.string()),
            (THRESHOLD, pa.float64()),
            (THICKNESS, pa.int32()),
            (SCHEMA_VERSION_COL, pa.int32()),
            (ERROR, pa.string()),
        ]
    )


def block_status(generation: str, plan: BlockPlan) -> bool:
    """True when the block's final shard exists and matches the plan.

    Raises:
        PlanMismatchError: the shard exists but holds other ids or another row count.
    """
    uri = fs.join(generation, part_name(plan.key))
    if not fs.is_file(uri):
        return False
    num_rows, kv = part_metadata(uri)
    if num_rows != len(plan.image_ids) or kv.get(META_IDS_SHA) != plan.ids_sha.encode():
        raise PlanMismatchError(
            f"{uri} holds {num_rows} rows of another id list than block {plan.key} of "
            f"the current listing ({len(plan.image_ids)} ids): the input changed since it was "
            "written; write to a new --output"
        )
    return True


def part_metadata(uri: str) -> tuple[int, dict[bytes, bytes]]:
    """(row count, key-value metadata) of a shard, from its footer only."""
    import pyarrow.parquet as pq

    filesystem, path, _ = fs.resolve(uri)
    with filesystem.open_input_file(path) as f:
        meta = pq.ParquetFile(f).metadata
    return meta.num_rows, dict(meta.metadata or {})


def rle_cell(counts: str | None, size: int) -> dict[str, Any] | None:
    return None if counts is None else {"size": [size, size], "counts": counts}


def block_table(
    plan: BlockPlan,
    rows: dict[str, dict[str, Any]],
    constants: dict[str, Any],
    extra_meta: dict[bytes, bytes] | None = None,
) -> Any:
    """Arrow table of one block in plan order.

    Args:
        plan: the block.
        rows: image_id -> {source_uri, dataset, height, width, pseudo_boundary, human_boundary,
            error}; must hold exactly the plan's ids.
        constants: resolution, checkpoint, checkpoint_sha, threshold, thickness.
        extra_meta: more Parquet key-value metadata (tar chunks: :data:`META_CHUNK`).
    """
    import pyarrow as pa

    missing = [i for i in plan.image_ids if i not in rows]
    extra = set(rows) - set(plan.image_ids)
    if missing or extra:
        raise RuntimeError(
            f"block {plan.key}: rows do not match the plan (missing {missing[:3]}, "
            f"unexpected {sorted(extra)[:3]})"
        )
    ordered = [rows[i] for i in plan.image_ids]
    records = []
    for image_id, row in zip(plan.image_ids, ordered, strict=True):
        bad = row.get(ERROR) is not None
        records.append(
            {
                IMAGE_ID: image_id,
                SOURCE_URI: row[SOURCE_URI],
                DATASET: row[DATASET],
                HEIGHT: row.get(HEIGHT) or None,
                WIDTH: row.get(WIDTH) or None,
                RESOLUTION: constants[RESOLUTION],
                PSEUDO_BOUNDARY: None if bad else row.get(PSEUDO_BOUNDARY),
                HUMAN_BOUNDARY: None if bad else row.get(HUMAN_BOUNDARY),
                CHECKPOINT: constants[CHECKPOINT],
                CHECKPOINT_SHA: constants[CHECKPOINT_SHA],
                THRESHOLD: constants[THRESHOLD],
                THICKNESS: constants[THICKNESS],
                SCHEMA_VERSION_COL: SCHEMA_VERSION,
                ERROR: row.get(ERROR),
            }
        )
    schema = shard_schema().with_metadata(
        {
            META_BLOCK: plan.key.encode(),
            META_IDS_SHA: plan.ids_sha.encode(),
            META_ROWS: str(len(records)).encode(),
            **(extra_meta or {}),
        }
    )
    return pa.Table.from_pylist(records, schema=schema)


def write_block(generation: str, table: Any, block: str) -> str:
    """Write one block's table atomically; returns the shard URI."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    uri = fs.join(generation, part_name(block))
    write_file(uri, sink.getvalue().to_pybytes())
    return uri
