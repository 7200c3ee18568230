"""The driver side of labeling: pipeline output rows -> complete blocks -> atomic shard writes.

Rows come back in any order, from any block. :func:`collect_blocks` keeps one buffer per open
block and writes a block when it holds every row the block needs (``directsam.labeling.units``
knows how many), under the run's lease. Rows of blocks already on disk (re-read past a missing
chunk) and rows a retried Ray task delivers twice are skipped, so each shard is written once.
"""

from __future__ import annotations

import json
import time
from typing import Any

from directsam.data.sources.tarstream import BLOCK, BLOCK_INFO
from directsam.data.targets import cell_text
from directsam.labeling.lease import Lease
from directsam.labeling.stages import HUMAN_COUNTS, PSEUDO_COUNTS
from directsam.labeling.units import ListedWork, TarWork, unit_of
from directsam.labeling.writer import block_table, rle_cell, write_block
from directsam.schema import (
    DATASET,
    ERROR,
    HEIGHT,
    HUMAN_BOUNDARY,
    IMAGE_ID,
    PSEUDO_BOUNDARY,
    SOURCE_URI,
    WIDTH,
)


def _rows_of(batch: dict[str, Any], res: int) -> list[tuple[str, str, dict[str, Any], Any]]:
    """(block key, image id, shard row, block_info dict or None) per row of an output batch."""
    out = []
    infos = batch.get(BLOCK_INFO)
    for i in range(len(batch[IMAGE_ID])):
        raw = cell_text(infos[i]) if infos is not None else None
        row = {
            SOURCE_URI: str(batch[SOURCE_URI][i]),
            DATASET: str(batch[DATASET][i]),
            HEIGHT: int(batch[HEIGHT][i]),
            WIDTH: int(batch[WIDTH][i]),
            PSEUDO_BOUNDARY: rle_cell(cell_text(batch[PSEUDO_COUNTS][i]), res),
            HUMAN_BOUNDARY: rle_cell(cell_text(batch[HUMAN_COUNTS][i]), res),
            ERROR: cell_text(batch[ERROR][i]),
        }
        out.append(
            (str(batch[BLOCK][i]), str(batch[IMAGE_ID][i]), row, json.loads(raw) if raw else None)
        )
    return out


def _write(
    work: ListedWork | TarWork,
    generation: str,
    key: str,
    rows: dict[str, dict[str, Any]],
    info: dict[str, Any] | None,
    constants: dict[str, Any],
    lease: Lease,
) -> None:
    lease.check()  # never write after another run took the generation over
    plan, meta = work.block_plan(key, rows, info)
    write_block(generation, block_table(plan, rows, constants, meta), key)
    work.note_written(key, info)


def collect_blocks(
    ds: Any,
    work: ListedWork | TarWork,
    generation: str,
    constants: dict[str, Any],
    lease: Lease,
    limit: float,
    resolution: int,
    progress_interval_s: float,
) -> tuple[dict[str, int], float | None, float | None, int]:
    """Gather the pipeline's rows per block and write each block once it is complete.

    Returns:
        (counts {rows, duplicates, blocks}, time of the first batch, of the last batch, rows
        after the first batch) for the throughput figures.

    Raises:
        LeaseLostError: another run took the generation over.
        RuntimeError: the stream ended with a block still missing rows.
    """
    from directsam.raycluster import ProgressLogger

    progress = ProgressLogger(work.num_inputs, progress_interval_s)
    buffers: dict[str, dict[str, dict[str, Any]]] = {}
    infos: dict[str, dict[str, Any]] = {}
    written = work.already_written()
    seen_units: set[str] = set()
    count = {"rows": 0, "duplicates": 0, "blocks": 0}
    first = last = None
    after_first = 0
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        now = time.perf_counter()
        rows = _rows_of(batch, resolution)
        if first is None:
            first = now
        else:
            after_first += len(rows)
        last = now
        progress.update(len(rows))
        count["rows"] += len(rows)
        for key, image_id, row, info in rows:
            seen_units.add(unit_of(key))
            if key in written:  # re-read past a missing chunk: this one is on disk already
                work.note_on_disk(key, info)
                continue
            buf = buffers.get(key)
            if buf is None:
                buf = buffers[key] = work.carried(key)
            if image_id in buf:  # a retried Ray task re-delivered it: keep one
                count["duplicates"] += 1
                continue
            buf[image_id] = row
            if info is not None:
                if info.get("retry") is not None:
                    info["retry_ids"] = [image_id]  # the row standing for the unread rest
                infos[key] = info
        for key in [k for k, buf in buffers.items() if len(buf) == work.expected(k, infos.get(k))]:
            _write(work, generation, key, buffers.pop(key), infos.pop(key, None), constants, lease)
            written.add(key)
            count["blocks"] += 1
            if count["blocks"] >= limit:
                break
        if count["blocks"] >= limit:
            break
    else:
        for key, info in work.finish(seen_units):
            rows_left = buffers.pop(key, None) or work.carried(key)
            _write(work, generation, key, rows_left, info, constants, lease)
        if buffers:
            missing = {k: (work.expected(k, infos.get(k)), len(b)) for k, b in buffers.items()}
            raise RuntimeError(
                f"the pipeline ended with unwritten blocks (expected, received rows): {missing}"
            )
    progress.emit()
    return count, first, last, after_first
