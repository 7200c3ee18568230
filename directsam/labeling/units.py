"""What a labeling run has to do, and when a block is complete: listed blocks or tar chunks.

:class:`ListedWork` (folders, COCO, label maps, images, shards): block ``k`` is ids
``[k*R, (k+1)*R)`` of the sorted listing; its rows are known up front.

:class:`TarWork` (SA-1B tars): each tar is a unit streamed by one read task; chunk ``c`` of a
unit is its ``c``-th run of ``R`` images. A chunk is complete when the driver holds as many rows
as its closing row's ``block_info`` says. A re-run lists the generation's parts once, reads the
footers of at most two parts per unfinished unit, and restarts each unit at the first missing
chunk (one ranged GET from the byte where the previous chunk ended) or, for a chunk written
after a read failed for good, at the failure's byte with that chunk's good rows carried over.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from directsam.data.sources import fs
from directsam.data.sources.plan import ListedPlan, TarPlan
from directsam.data.sources.shards.layout import (
    chunk_key,
    listed_key,
    parse_chunk_key,
    part_files,
    part_key,
)
from directsam.data.sources.tarstream import BLOCK, TarUnit
from directsam.labeling.writer import (
    META_CHUNK,
    BlockPlan,
    block_status,
    ids_sha256,
    part_metadata,
)
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

if TYPE_CHECKING:
    import ray.data

ROW_COLUMNS = (SOURCE_URI, DATASET, HEIGHT, WIDTH, PSEUDO_BOUNDARY, HUMAN_BOUNDARY, ERROR)
Info = dict[str, Any]


class ListedWork:
    """Blocks of ``rows_per_shard`` consecutive ids of a listed plan.

    Block ids are sliced from the plan's Arrow column when a block is checked or written; the
    driver never holds a Python string per image.
    """

    def __init__(self, plan: ListedPlan, rows_per_shard: int):
        self.plan, self.rows = plan, rows_per_shard
        self.ids = plan.items["image_id"]
        n = len(self.ids)
        self.keys = [listed_key(k) for k in range(-(-n // rows_per_shard))]
        self.num_inputs: int | None = n
        self.plan_keys = {"kind": "listed", "ids_sha256": _ids_sha(self.ids), "num_items": n}
        self.pending: list[str] = []
        self.done: list[str] = []
        self.written: list[str] = []

    def block(self, key: str) -> BlockPlan:
        """Block ``key``: ids ``[k*R, (k+1)*R)`` of the sorted listing."""
        ids = self.ids.slice(int(key) * self.rows, self.rows).to_pylist()
        return BlockPlan(key, tuple(ids))

    def scan(self, generation: str) -> None:
        """Split blocks into done (a matching shard exists) and pending: one listing of the
        generation, then a footer check of the blocks found in it."""
        on_disk = {part_key(uri) for uri in part_files(generation)}
        for key in self.keys:
            done = key in on_disk and block_status(generation, self.block(key))
            (self.done if done else self.pending).append(key)

    def dataset(self, decode_batch_size: int) -> ray.data.Dataset:
        """Listing rows of the pending blocks, each with its ``block`` key (bytes read later)."""
        import pyarrow as pa

        from directsam.data.sources import items_dataset

        parts = []
        for key in self.pending:
            part = self.plan.items.slice(int(key) * self.rows, self.rows)
            n = part.num_rows
            parts.append(part.append_column(BLOCK, pa.array([key] * n, pa.string())))
        return items_dataset(pa.concat_tables(parts), rows_per_block=decode_batch_size)

    def carried(self, key: str) -> dict[str, dict[str, Any]]:
        return {}

    def already_written(self) -> set[str]:
        return set()

    def expected(self, key: str, info: Info | None) -> int | None:
        return min(self.rows, len(self.ids) - int(key) * self.rows)

    def block_plan(
        self, key: str, rows: dict[str, Any], info: Info | None
    ) -> tuple[BlockPlan, dict[bytes, bytes]]:
        return self.block(key), {}

    def finish(self, seen: set[str]) -> list[tuple[str, Info]]:
        return []

    def note_written(self, key: str, info: Info | None) -> None:
        self.written.append(key)

    def note_on_disk(self, key: str, info: Info | None) -> None:
        """Listed blocks are never re-read past: nothing to note."""

    def complete(self) -> bool:
        return len(self.done) + len(self.written) == len(self.keys)


def _ids_sha(ids: Any) -> str:
    """:func:`ids_sha256` of an Arrow string column, 65,536 ids at a time."""
    from itertools import chain

    chunks = (ids.slice(start, 65_536).to_pylist() for start in range(0, len(ids), 65_536))
    return ids_sha256(chain.from_iterable(chunks))


@dataclass
class _UnitState:
    unit: TarUnit
    carried: dict[str, dict[str, Any]] = field(default_factory=dict)
    written: set[str] = field(default_factory=set)  # chunk keys already on disk, kept


def unit_of(key: str) -> str:
    return parse_chunk_key(key)[0]


def _chunk_meta(uri: str) -> Info:
    _, kv = part_metadata(uri)
    raw = kv.get(META_CHUNK)
    if raw is None:
        raise ValueError(f"{uri}: no {META_CHUNK.decode()} metadata (not a tar chunk shard)")
    return json.loads(raw)


def _carried_rows(uri: str, retry_ids: list[str]) -> dict[str, dict[str, Any]]:
    import pyarrow.parquet as pq

    filesystem, path, _ = fs.resolve(uri)
    table = pq.read_table(path, columns=[IMAGE_ID, *ROW_COLUMNS], filesystem=filesystem)
    skip = set(retry_ids)
    return {r[IMAGE_ID]: r for r in table.to_pylist() if r[IMAGE_ID] not in skip}


class TarWork:
    """Chunks of the tar units of a tar plan (module docstring)."""

    def __init__(self, plan: TarPlan, rows_per_shard: int):
        self.plan, self.rows = plan, rows_per_shard
        self.units = {u.name: u for u in plan.units()}
        self.num_inputs: int | None = None  # unknown until the tars are read
        self.plan_keys = {
            "kind": "tars",
            "ids_sha256": None,
            "tars_sha256": plan.fingerprint(),
            "num_tars": len(plan.tars),
            "tars": plan.describe(),
        }
        self.states: dict[str, _UnitState] = {}
        self.done: list[str] = []  # chunk keys on disk of units finished before this run
        self.pending: list[str] = []  # unit names still to read
        self.written: list[str] = []  # chunk keys written by this run
        self.finished: set[str] = set()  # units whose final chunk this run wrote
        self.retrying: set[str] = set()  # units this run left with a failed read to retry

    def scan(self, generation: str) -> None:
        """Find, per unit, what is on disk and where its read must start."""
        by_unit: dict[str, dict[int, str]] = {}
        for uri in part_files(generation):
            unit, chunk = parse_chunk_key(part_key(uri))
            by_unit.setdefault(unit, {})[chunk] = uri
        for name, unit in self.units.items():
            parts = by_unit.get(name, {})
            state = self._resume(unit, parts)
            if state is None:
                self.done.extend(chunk_key(name, c) for c in parts)
            else:
                self.states[name] = state
                self.pending.append(name)

    def _resume(self, unit: TarUnit, parts: dict[int, str]) -> _UnitState | None:
        if not parts:
            return _UnitState(unit)
        last = max(parts)
        meta_last = _chunk_meta(parts[last])
        retry_last = meta_last["retry"] is not None
        gap = next((c for c in range(last + 1) if c not in parts), None)
        if gap is None and meta_last["final"] and not retry_last:
            return None
        written = {chunk_key(unit.name, c) for c in parts}
        if retry_last:  # rewritten once the failed read is retried
            written.discard(chunk_key(unit.name, last))
        if gap is None and retry_last:
            t, offset = meta_last["retry"]
            carried = _carried_rows(parts[last], meta_last.get("retry_ids", []))
            start = replace(
                unit, start_tar=t, start_offset=offset, start_chunk=last, filled=len(carried)
            )
            return _UnitState(start, carried, written)
        first = last + 1 if gap is None else gap
        if first == 0:
            return _UnitState(unit, written=written)
        meta_before = meta_last if first == last + 1 else _chunk_meta(parts[first - 1])
        t, offset = meta_before["end"]
        start = replace(unit, start_tar=t, start_offset=offset, start_chunk=first)
        return _UnitState(start, written=written)

    def dataset(self, decode_batch_size: int) -> ray.data.Dataset:
        """Rows of the pending units, streamed by one read task per unit."""
        import ray.data

        from directsam.data.sources.datasource import TarDatasource

        units = [self.states[name].unit for name in self.pending]
        source = TarDatasource(
            units, self.plan.dataset, self.plan.store, chunk_rows=self.rows, bookkeeping=True
        )
        return ray.data.read_datasource(source)

    def carried(self, key: str) -> dict[str, dict[str, Any]]:
        unit, chunk = parse_chunk_key(key)
        state = self.states.get(unit)
        if state is None or chunk != state.unit.start_chunk:
            return {}
        return dict(state.carried)

    def already_written(self) -> set[str]:
        return {k for s in self.states.values() for k in s.written}

    def expected(self, key: str, info: Info | None) -> int | None:
        return None if info is None else int(info["rows"])

    def block_plan(
        self, key: str, rows: dict[str, Any], info: Info | None
    ) -> tuple[BlockPlan, dict[bytes, bytes]]:
        assert info is not None
        unit = self.units[unit_of(key)]
        meta = {
            "unit": unit.name,
            **{k: info[k] for k in ("rows", "start", "end", "final", "retry")},
            "retry_ids": info.get("retry_ids", []),
            "tars": [[t.uri, t.version] for t in unit.tars],
        }
        return BlockPlan(key, tuple(sorted(rows))), {META_CHUNK: json.dumps(meta).encode()}

    def finish(self, seen: set[str]) -> list[tuple[str, Info]]:
        """Chunks to close for units whose read yielded no row (an empty tar, or nothing left
        after a retried read): ``(key, block_info)``; the carried rows are the chunk."""
        out = []
        for name in self.pending:
            if name in seen:
                continue
            unit = self.states[name].unit
            info = {
                "rows": unit.filled,
                "start": [unit.start_tar, unit.start_offset],
                "end": [len(unit.tars), 0],
                "final": True,
                "retry": None,
            }
            out.append((chunk_key(name, unit.start_chunk), info))
        return out

    def note_written(self, key: str, info: Info | None) -> None:
        self.written.append(key)
        unit = unit_of(key)
        if info is not None and info.get("retry") is not None:
            self.retrying.add(unit)
        elif info is not None and info.get("final"):
            self.finished.add(unit)

    def note_on_disk(self, key: str, info: Info | None) -> None:
        """A re-read passed chunk ``key``, kept on disk. Chunks of one tar can be written out of
        order (Ray Data does not preserve it), so the kept chunk may be the unit's final one:
        then reading up to it finishes the unit."""
        if info is not None and info.get("final") and info.get("retry") is None:
            self.finished.add(unit_of(key))

    def complete(self) -> bool:
        """Every unit read to its end, none left with a failed read."""
        return set(self.pending) <= self.finished and not self.retrying


def make_work(plan: TarPlan | ListedPlan, rows_per_shard: int) -> ListedWork | TarWork:
    if isinstance(plan, TarPlan):
        return TarWork(plan, rows_per_shard)
    return ListedWork(plan, rows_per_shard)
