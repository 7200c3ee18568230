"""The ``images`` source: a folder of plain images (no annotations; ``label``/``segment`` only).

Image ids are paths below the folder without extension; the input *is* the split.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from directsam.data.sources import fs
from directsam.data.sources.listing import (
    ItemColumns,
    dataset_name,
    require_input,
    sorted_unique,
    stem,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from directsam.data.sources.spec import SourceSpec
    from directsam.data.sources.store import StoreOptions


def list_images(spec: SourceSpec, store: StoreOptions) -> pa.Table:
    """The lister of ``images``: one row per image file under ``input``, sorted by id."""
    require_input(spec.input)
    name = dataset_name(spec)
    out = ItemColumns()
    for f in fs.list_files(spec.input, fs.IMAGE_EXTENSIONS):
        out.add(stem(f.rel), f.uri, name, "none")
    return sorted_unique(out.table())
