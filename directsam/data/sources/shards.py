"""Our own labeled shards as a source: re-label a generation with a newer checkpoint.

Items point at the original images (``source_uri``) and carry the human boundary RLE of the
previous generation inline (``annotation_kind="shard"``), so the new generation keeps it
unchanged. Rows that had failed stay failed with the same reason.
"""

from __future__ import annotations

import json
from typing import Any

from directsam.data.sources import fs
from directsam.data.sources.listing import SourceItem
from directsam.schema import DATASET, ERROR, HUMAN_BOUNDARY, IMAGE_ID, SOURCE_URI


def resolve_generation(input: str) -> str:
    """The one generation folder under ``input`` (else a ValueError naming the candidates)."""
    from directsam.labeling.layout import find_generations

    gens = find_generations(input)
    if len(gens) != 1:
        what = ", ".join(gens) if gens else "none"
        raise ValueError(
            f"--input {input!r}: expected exactly one shard generation (a folder with _plan.json), "
            f"found {what}; point --input at one gen-* folder"
        )
    return gens[0]


def generation_plan(input: str) -> dict[str, Any]:
    """The ``_plan.json`` of the generation at ``input`` (resolution, thickness, checkpoint...)."""
    from directsam.labeling.layout import PLAN_FILE, read_json

    plan = read_json(fs.join(resolve_generation(input), PLAN_FILE))
    assert plan is not None
    return plan


def _rle_json(cell: Any) -> bytes | None:
    if cell is None:
        return None
    return json.dumps({"size": [int(v) for v in cell["size"]], "counts": cell["counts"]}).encode()


def list_shards(input: str, dataset: str | None) -> list[SourceItem]:
    """One item per row of the generation at ``input`` (its finished part files)."""
    import pyarrow.parquet as pq

    from directsam.labeling.layout import part_files

    items = []
    for uri in part_files(resolve_generation(input)):
        filesystem, path, _ = fs.resolve(uri)
        cols = [IMAGE_ID, SOURCE_URI, DATASET, HUMAN_BOUNDARY, ERROR]
        for row in pq.read_table(path, columns=cols, filesystem=filesystem).to_pylist():
            human = _rle_json(row[HUMAN_BOUNDARY])
            item = SourceItem(
                row[IMAGE_ID],
                row[SOURCE_URI],
                dataset or row[DATASET],
                "shard" if human is not None else "none",
                annotation=human,
                error=row[ERROR],
            )
            items.append(item)
    return items
