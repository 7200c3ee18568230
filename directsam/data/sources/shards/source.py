"""The ``shards`` source, our own labeled shards: re-label a generation with a newer checkpoint.

Items point at the original images (``source_uri``) and carry the human boundary RLE of the
previous generation inline (``annotation_kind="shard"``), so the new generation keeps it
unchanged. Rows that had failed stay failed with the same reason. Rows keep their dataset name
unless ``--dataset`` gives one; ``val`` is the last 1% of sorted ids.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from directsam.data.sources import fs
from directsam.data.sources.listing import ItemColumns, sorted_unique, split_rows
from directsam.data.sources.shards.layout import part_files, resolve_generation
from directsam.schema import DATASET, ERROR, HUMAN_BOUNDARY, IMAGE_ID, SOURCE_URI

if TYPE_CHECKING:
    import pyarrow as pa

    from directsam.data.sources.spec import SourceSpec
    from directsam.data.sources.store import StoreOptions


def _rle_json(cell: Any) -> bytes | None:
    if cell is None:
        return None
    return json.dumps({"size": [int(v) for v in cell["size"]], "counts": cell["counts"]}).encode()


def shard_items(input: str, dataset: str | None) -> pa.Table:
    """A listing table (``listing.item_schema``) with one row per row of the generation at
    ``input`` (its finished part files), read column-wise."""
    import pyarrow.parquet as pq

    out = ItemColumns()
    for uri in part_files(resolve_generation(input)):
        filesystem, path, _ = fs.resolve(uri)
        cols = [IMAGE_ID, SOURCE_URI, DATASET, HUMAN_BOUNDARY, ERROR]
        table = pq.read_table(path, columns=cols, filesystem=filesystem)
        humans = table[HUMAN_BOUNDARY].to_pylist()
        for i, (image_id, uri_, ds, err) in enumerate(
            zip(
                table[IMAGE_ID].to_pylist(),
                table[SOURCE_URI].to_pylist(),
                table[DATASET].to_pylist(),
                table[ERROR].to_pylist(),
                strict=True,
            )
        ):
            human = _rle_json(humans[i])
            kind = "shard" if human is not None else "none"
            out.add(image_id, uri_, dataset or ds, kind, annotation=human, error=err)
    return out.table()


def list_shards(spec: SourceSpec, store: StoreOptions) -> pa.Table:
    """The lister of ``shards``: the generation at ``input``, sorted by id and split."""
    return split_rows(sorted_unique(shard_items(spec.input, spec.dataset)), spec.split)
