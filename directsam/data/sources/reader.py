"""Plans -> source rows (compressed bytes + annotation) and ``ray.data.Dataset`` readers.

``read_source(spec)`` builds a Ray dataset of source rows from a plan: tar plans stream each tar
once in a read task (:class:`~directsam.data.sources.datasource.TarDatasource`), listed plans
read each image (and annotation file) in parallel tasks (:func:`read_items`). Neither raises
for one bad input: read failures become ``error`` values. ``list_source`` returns the items of
a small input as :class:`SourceItem` (tests, notebooks).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from directsam.data.sources import fs
from directsam.data.sources.listers import plan_source
from directsam.data.sources.listing import SourceItem, items_of, table_of
from directsam.data.sources.plan import ListedPlan, TarPlan, tar_items
from directsam.data.sources.spec import SourceSpec
from directsam.data.sources.store import StoreOptions
from directsam.schema import ANNOTATION, ERROR, IMAGE_BYTES, IMAGE_ID, LABEL_MODE, InputError

if TYPE_CHECKING:
    import pyarrow as pa
    import ray.data

# Listing columns consumed by read_items (not part of the source-row contract).
_ITEM_ONLY = (
    "annotation_uri",
    "has_annotation",
    "image_offset",
    "image_size",
    "annotation_offset",
    "annotation_size",
)
READ_THREADS = 8  # object-store reads are latency-bound; threads overlap them
__all__ = ["LABEL_MODE", "list_source", "read_items", "read_source", "items_dataset"]


def list_source(spec: SourceSpec, store: StoreOptions | None = None) -> list[SourceItem]:
    """The items of a *small* input, one per image, sorted by ``image_id``.

    Arguments as :func:`~directsam.data.sources.listers.plan_source`. Tar inputs are streamed
    once here, on this process, to learn their members (jobs never do this: they plan tars
    and stream them in Ray tasks); their items carry member byte ranges.

    Raises:
        ValueError: unknown source/split, missing input, unusable annotation JSON.
    """
    plan = plan_source(spec, store)
    if isinstance(plan, TarPlan):
        return items_of(tar_items(plan))  # sorted and unique already
    return items_of(plan.items)


def _inline(row: dict[str, Any]) -> bytes | None:
    """The row's inline annotation: ``to_row`` dicts flag it, Arrow rows hold None when absent."""
    annotation = row.get("annotation")
    if annotation is None or not row.get("has_annotation", True):
        return None
    return bytes(annotation)


def _read_one(row: dict[str, Any]) -> tuple[bytes | None, bytes | None, str | None]:
    """(image bytes, annotation bytes, error) for one listing row."""
    if row["error"]:
        return None, None, row["error"]
    try:
        image = fs.read_uri(row["source_uri"], int(row["image_offset"]), int(row["image_size"]))
        annotation = _inline(row)
        if annotation is None and row["annotation_uri"]:
            annotation = fs.read_uri(
                row["annotation_uri"],
                int(row["annotation_offset"]),
                int(row["annotation_size"]),
            )
        return image, annotation, None
    except InputError as err:
        return None, None, str(err)


def read_items(
    batch: dict[str, np.ndarray], store: StoreOptions | None = None
) -> dict[str, np.ndarray]:
    """Batch function: listing rows -> source rows (bytes read, errors as values).

    Output columns: ``image_id, source_uri, dataset, image_bytes`` (compressed, None on
    failure), ``annotation`` (bytes or None), ``annotation_kind``, ``label_mode``, ``error``
    (None or ``"<code>: <detail>"``), plus any extra input columns (e.g. the labeling block).
    ``store``: the job's S3 settings (set for this worker process before reading).
    """
    if store is not None:
        fs.set_store(store)
    n = len(batch[IMAGE_ID])
    rows = [{k: batch[k][i] for k in batch} for i in range(n)]
    workers = min(READ_THREADS, n)
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(_read_one, rows))
    else:
        results = [_read_one(r) for r in rows]
    out = {k: v for k, v in batch.items() if k not in _ITEM_ONLY}
    images = np.empty(n, dtype=object)
    annotations = np.empty(n, dtype=object)
    errors = np.empty(n, dtype=object)
    for i, (image, annotation, error) in enumerate(results):
        images[i], annotations[i], errors[i] = image, annotation, error or None
    out[IMAGE_BYTES], out[ANNOTATION], out[ERROR] = images, annotations, errors
    return out


def items_dataset(items: list[SourceItem] | pa.Table, rows_per_block: int = 64) -> ray.data.Dataset:
    """A dataset of listing rows (small), split so that reads run as parallel tasks.

    At most ~10,000 blocks: a plan of millions of images gets proportionally larger blocks.
    """
    import ray.data

    table = table_of(items) if isinstance(items, list) else items
    n = table.num_rows
    per_block = max(1, rows_per_block, -(-n // 10_000))
    slices = [table.slice(start, per_block) for start in range(0, n, per_block)]
    return ray.data.from_arrow(slices or [table])


def dataset_of_plan(
    plan: TarPlan | ListedPlan,
    *,
    shuffle_seed: int | None = None,
    read_batch_size: int = 16,
) -> ray.data.Dataset:
    """The Ray dataset of source rows of a plan (see :func:`read_source`)."""
    import ray.data

    if isinstance(plan, TarPlan):
        from directsam.data.sources.datasource import TarDatasource

        source = TarDatasource(plan.units(), plan.dataset, plan.store, shuffle_seed=shuffle_seed)
        return ray.data.read_datasource(source)
    return items_dataset(plan.items).map_batches(
        read_items, fn_kwargs={"store": plan.store}, batch_size=read_batch_size
    )


def read_source(
    spec: SourceSpec,
    *,
    shuffle_seed: int | None = None,
    store: StoreOptions | None = None,
) -> ray.data.Dataset:
    """A Ray dataset of source rows (see :func:`read_items` for columns), one per input image.

    Arguments as :func:`~directsam.data.sources.listers.plan_source`. Tar sources stream every
    tar once (one GET per tar on S3; ``shuffle_seed`` reads the tars in a seeded order that
    changes per execution, i.e. per training epoch); other sources read the driver's sorted
    listing in parallel tasks.
    """
    plan = plan_source(spec, store)
    return dataset_of_plan(plan, shuffle_seed=shuffle_seed)


def source_uri_basename(uri: str) -> str:
    """Last path component of a source URI (tar members: the member name)."""
    _, member = fs.split_member(uri)
    return os.path.basename(member or uri)
