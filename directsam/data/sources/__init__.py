"""Input sources -> source rows ``{image_id, source_uri, dataset, image_bytes, annotation, ...}``.

Five source types: SA-1B (tar shards or extracted folders), COCO-style instance JSON,
label-map folder pairs, plain image folders, and our own labeled shards. Paths may be local or
``s3://``-style URIs (pyarrow filesystems). See ``docs/LABELING.md`` for the layouts.

Importing this package is cheap (no Ray, no image libraries).
"""

from directsam.data.sources.fs import read_uri
from directsam.data.sources.listing import SOURCE_TYPES, SPLITS, SourceItem
from directsam.data.sources.reader import (
    LABEL_MODE,
    items_dataset,
    list_source,
    read_items,
    read_source,
)

__all__ = [
    "LABEL_MODE",
    "SOURCE_TYPES",
    "SPLITS",
    "SourceItem",
    "items_dataset",
    "list_source",
    "read_items",
    "read_source",
    "read_uri",
]
