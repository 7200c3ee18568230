"""A Ray Data datasource over tar units: one read task per unit streams its tar(s) once.

Imports Ray: only the functions that build Ray datasets import this module.

Chosen over ``ray.data.read_webdataset`` by measurement and by contract
(``benchmarks/tar_requests.py``, results in ``benchmarks/results/labeling.md``): on an
S3-protocol server ``read_webdataset`` issues a HEAD plus one ranged GET per 32 MiB read
buffer (pyarrow's S3 input streams request every read separately), while this datasource
issues one GET per tar (boto3 streams the body); and ``read_webdataset`` raises on a damaged
tar (the job fails, the tar's good images are lost) and cannot resume a tar mid-way, while
:func:`~directsam.data.sources.tarstream.read_unit` turns damage into rows and records the
byte where every chunk ends.

Read tasks come out in the units' order, or, with ``shuffle_seed``, in a seeded order that
changes with every execution (``DataContext._execution_idx``: each training epoch streams
the tars in another order, as ``read_*(shuffle=FileShuffleConfig(seed))`` does for files).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ray.data import Datasource

from directsam.data.sources.store import StoreOptions
from directsam.data.sources.tarstream import (
    BLOCK,
    BLOCK_INFO,
    TarUnit,
    read_unit,
)
from directsam.schema import (
    ANNOTATION,
    ANNOTATION_KIND,
    DATASET,
    ERROR,
    IMAGE_BYTES,
    IMAGE_ID,
    LABEL_MODE,
    SOURCE_URI,
)

if TYPE_CHECKING:
    import pyarrow as pa

BLOCK_BYTES = 32 << 20  # image + annotation bytes per block (an SA-1B image is ~0.5-1 MB)
SOURCE_COLUMNS = (
    IMAGE_ID,
    SOURCE_URI,
    DATASET,
    IMAGE_BYTES,
    ANNOTATION,
    ANNOTATION_KIND,
    LABEL_MODE,
    ERROR,
)


def row_schema(bookkeeping: bool) -> pa.Schema:
    """Arrow schema of the rows the datasource yields (source rows [+ block, block_info])."""
    import pyarrow as pa

    cols = [
        (c, pa.binary() if c in (IMAGE_BYTES, ANNOTATION) else pa.string()) for c in SOURCE_COLUMNS
    ]
    if bookkeeping:
        cols += [(BLOCK, pa.string()), (BLOCK_INFO, pa.string())]
    return pa.schema(cols)


def unit_blocks(
    unit: TarUnit,
    dataset: str,
    store: StoreOptions,
    chunk_rows: int,
    bookkeeping: bool,
    block_rows: int,
    block_bytes: int = BLOCK_BYTES,
) -> Iterator[pa.Table]:
    """The rows of one unit as Arrow tables of up to ``block_rows`` rows or ``block_bytes``
    image bytes (a read task's body)."""
    import pyarrow as pa

    from directsam.data.sources import fs

    fs.set_store(store)  # readers of source_uri in this worker use the job's endpoint too
    schema = row_schema(bookkeeping)
    names = schema.names
    pending: list[dict] = []
    size = 0
    for rows in read_unit(unit, dataset, store, chunk_rows, batch_rows=16):
        for row in rows:
            pending.append({k: row[k] for k in names})
            size += len(row[IMAGE_BYTES] or b"") + len(row[ANNOTATION] or b"")
        if len(pending) >= block_rows or size >= block_bytes:
            yield pa.Table.from_pylist(pending, schema=schema)
            pending, size = [], 0
    if pending:
        yield pa.Table.from_pylist(pending, schema=schema)


class TarDatasource(Datasource):
    """``ray.data.read_datasource(TarDatasource(...))``: source rows of tar units.

    Args:
        units: what to read (:meth:`TarPlan.units`, or the unfinished part of a resume).
        dataset: dataset name put on every row.
        store: S3 settings, shipped to the read tasks.
        chunk_rows: images per output chunk (labeling's ``rows_per_shard``).
        bookkeeping: add the ``block`` / ``block_info`` columns (labeling needs them).
        shuffle_seed: seeded tar order, new per execution (training), else the given order.
        block_rows: most rows per yielded block (blocks also stop at 32 MiB of bytes).
    """

    def __init__(
        self,
        units: list[TarUnit],
        dataset: str,
        store: StoreOptions,
        chunk_rows: int = 1 << 30,
        bookkeeping: bool = False,
        shuffle_seed: int | None = None,
        block_rows: int = 256,
    ):
        self.units, self.dataset, self.store = list(units), dataset, store
        self.chunk_rows, self.bookkeeping = chunk_rows, bookkeeping
        self.shuffle_seed, self.block_rows = shuffle_seed, block_rows

    def get_name(self) -> str:
        return "Tars"  # Ray Data shows it as ReadTars

    def estimate_inmemory_data_size(self) -> int | None:
        return sum(u.size for u in self.units)

    def get_read_tasks(
        self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None
    ) -> list[Any]:
        from ray.data import ReadTask
        from ray.data.block import BlockMetadata

        units = list(self.units)
        if self.shuffle_seed is not None:
            execution = getattr(data_context, "_execution_idx", 0) if data_context else 0
            random.Random(f"{self.shuffle_seed}:{execution}").shuffle(units)
        schema = row_schema(self.bookkeeping)
        tasks = []
        for unit in units:
            args = (unit, self.dataset, self.store, self.chunk_rows)
            args += (self.bookkeeping, self.block_rows)

            def read_fn(args: tuple = args) -> Iterator[pa.Table]:
                return unit_blocks(*args)

            meta = BlockMetadata(
                num_rows=None,
                size_bytes=unit.size,
                exec_stats=None,
                input_files=tuple(t.uri for t in unit.tars),
            )
            tasks.append(ReadTask(read_fn, meta, schema=schema))
        return tasks
