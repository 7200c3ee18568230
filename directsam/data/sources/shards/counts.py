"""Counts over labeled shards, read from their id and error columns only.

``shard_counts`` is what the label job reports and ``_SUCCESS.json`` records;
``merged_label_counts`` is what a merged-label reader will use; ``shard_val_keys`` is the
held-out split of stage 3, the same rows as ``read_source("shards", ..., split="val")``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from directsam.data.sources import fs
from directsam.data.sources.shards.layout import part_files, select_generations
from directsam.schema import DATASET, ERROR, IMAGE_ID


def _read_columns(uri: str, columns: list[str]) -> Any:
    import pyarrow.parquet as pq

    filesystem, path, _ = fs.resolve(uri)
    return pq.read_table(path, columns=columns, filesystem=filesystem)


def shard_counts(uris: list[str], max_reasons: int = 10) -> dict[str, Any]:
    """Good/failed counts, per-code error counts and the first reasons of finished shards."""
    total = failed = 0
    codes: Counter[str] = Counter()
    reasons: list[str] = []
    for uri in uris:
        table = _read_columns(uri, [IMAGE_ID, ERROR])
        total += table.num_rows
        for image_id, err in zip(
            table[IMAGE_ID].to_pylist(), table[ERROR].to_pylist(), strict=True
        ):
            if err is None:
                continue
            failed += 1
            codes[err.split(":", 1)[0]] += 1
            if len(reasons) < max_reasons:
                reasons.append(f"{image_id}: {err}")
    return {
        "num_rows": total,
        "num_good": total - failed,
        "num_failed": failed,
        "error_counts": dict(sorted(codes.items())),
        "first_errors": reasons,
    }


def merged_label_counts(
    shards: str, checkpoint: str | None = None, allow_incomplete: bool = False
) -> dict[str, int]:
    """Rows, usable rows and excluded (failed) rows of the generations a reader would pick."""
    files = [
        f for g in select_generations(shards, checkpoint, allow_incomplete) for f in part_files(g)
    ]
    counts = shard_counts(files, max_reasons=0)
    return {k: counts[k] for k in ("num_rows", "num_good", "num_failed")}


def shard_val_keys(
    shards: str, checkpoint: str | None, good_only: bool = False
) -> set[tuple[str, str]]:
    """``(dataset, image_id)`` of the held-out rows of labeled shards.

    Per generation (one per dataset), the last ``ceil(1%)`` of all rows in sorted-id order,
    the split ``read_source("shards", ..., split="val")`` uses; only the id columns are read.
    Failed rows count for the split (so it equals the evaluation split) but never train;
    ``good_only`` keeps only the held-out keys whose row is good, for counting.
    """
    from directsam.data.sources.listing import split_cut

    keys: set[tuple[str, str]] = set()
    for gen in select_generations(shards, checkpoint):
        rows: list[tuple[str, str]] = []
        for uri in part_files(gen):
            table = _read_columns(uri, [IMAGE_ID, DATASET, ERROR])
            rows.extend(
                zip(
                    table[DATASET].to_pylist(),
                    table[IMAGE_ID].to_pylist(),
                    table[ERROR].to_pylist(),
                )
            )
        rows.sort(key=lambda r: r[1])
        start, stop = split_cut(len(rows), "val")
        keys.update((str(d), str(i)) for d, i, err in rows[start:stop] if not (good_only and err))
    return keys
