"""Input sources -> source rows ``{image_id, source_uri, dataset, image_bytes, annotation, ...}``.

A :class:`SourceSpec` says what to read (``spec.py``: :data:`SourceType`, the one spelling of
the five types; every job's config has one as its ``source`` section). One module per type
lists it: ``sa1b`` (tar shards or extracted folders), ``coco`` (instance JSON), ``labelmap``
(label-map folder pairs), ``images`` (plain folders), ``shards.source`` (our own labeled
shards), in the table ``listers.LISTERS``. Paths may be local or ``s3://``-style URIs on any
S3-protocol store (the endpoint from ``StoreOptions``, the URI's query, or
``AWS_ENDPOINT_URL``). The driver plans (:func:`plan_source`: tar objects, or one Arrow table
of listed images); Ray tasks read. ``registry`` turns a dataset name into source keys;
``flags`` holds the source flags every command shares. See ``docs/LABELING.md``.

Importing this package is cheap (no Ray, no image libraries).
"""

from directsam.data.sources.fs import read_uri
from directsam.data.sources.listers import LISTERS, plan_source
from directsam.data.sources.listing import SourceItem
from directsam.data.sources.plan import ListedPlan, TarPlan
from directsam.data.sources.reader import (
    LABEL_MODE,
    dataset_of_plan,
    items_dataset,
    list_source,
    read_items,
    read_source,
)
from directsam.data.sources.spec import SOURCE_TYPES, SPLITS, SourceSpec, SourceType
from directsam.data.sources.store import StoreOptions

__all__ = [
    "LABEL_MODE",
    "LISTERS",
    "SOURCE_TYPES",
    "SPLITS",
    "ListedPlan",
    "SourceItem",
    "SourceSpec",
    "SourceType",
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
