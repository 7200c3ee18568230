"""Input sources -> source rows ``{image_id, source_uri, dataset, image_bytes, annotation, ...}``.

Five source types: SA-1B (tar shards or extracted folders), COCO-style instance JSON,
label-map folder pairs, plain image folders, and our own labeled shards. Paths may be local or
``s3://``-style URIs on any S3-protocol store (the endpoint from ``StoreOptions``, the URI's
query, or ``AWS_ENDPOINT_URL``). The driver plans (:func:`plan_source`: tar objects, or one
Arrow table of listed images); Ray tasks read. See ``docs/LABELING.md`` for the layouts.

Importing this package is cheap (no Ray, no image libraries).
"""

from directsam.data.sources.fs import read_uri
from directsam.data.sources.listing import SOURCE_TYPES, SPLITS, SourceItem
from directsam.data.sources.plan import ListedPlan, TarPlan, plan_source
from directsam.data.sources.reader import (
    LABEL_MODE,
    dataset_of_plan,
    items_dataset,
    list_source,
    read_items,
    read_source,
)
from directsam.data.sources.store import StoreOptions

__all__ = [
    "LABEL_MODE",
    "SOURCE_TYPES",
    "SPLITS",
    "ListedPlan",
    "SourceItem",
    "StoreOptions",
    "TarPlan",
    "dataset_of_plan",
    "items_dataset",
    "list_source",
    "plan_source",
    "read_items",
    "read_source",
    "read_uri",
]
