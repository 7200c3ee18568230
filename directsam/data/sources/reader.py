"""Source items -> source rows (compressed bytes + annotation) and ``ray.data.Dataset`` readers.

``read_items`` is the batch function that turns listed items into contract rows; it never
raises for one bad input: read failures become ``error`` values. ``read_source`` builds a Ray
dataset of those rows from a listing, or, for a whole directory of SA-1B tars, streams them with
``ray.data.read_webdataset`` (bytes kept compressed).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from directsam.data.sources import fs
from directsam.data.sources.listing import (
    SOURCE_TYPES,
    SPLITS,
    SourceItem,
    _sa1b_id,
    default_dataset_name,
    list_coco,
    list_images,
    list_labelmap,
    list_sa1b,
    sa1b_layout,
    select_items,
    split_items,
)
from directsam.schema import (
    ANNOTATION,
    ANNOTATION_KIND,
    ANNOTATION_MISSING,
    DATASET,
    ERROR,
    IMAGE_BYTES,
    IMAGE_ID,
    SOURCE_URI,
    InputError,
)

if TYPE_CHECKING:
    import ray.data

LABEL_MODE = "label_mode"  # extra source column: label-map mode for labelmap rows ("" otherwise)
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


def list_source(
    source: str,
    input: str,
    *,
    dataset: str | None = None,
    num_samples: int | None = None,
    seed: int | None = None,
    split: str = "all",
    mode: str = "single_channel",
    annotations: str | None = None,
    labels: str | None = None,
) -> list[SourceItem]:
    """List a source on the driver: one item per input image, sorted by ``image_id``.

    Args:
        source: ``sa1b`` | ``coco`` | ``labelmap`` | ``images`` | ``shards``.
        input: local path or URI (see ``docs/LABELING.md`` for each layout).
        dataset: dataset name (default: the input folder's name; shards keep theirs).
        num_samples: first N in sorted-id order; with ``seed`` a seeded random subset.
        split: ``all``, or for sa1b/shards ``train`` / ``val`` (last 1% of sorted ids); other
            sources have official splits as separate inputs, so the input *is* the split.
        mode: label-map mode (``single_channel`` | ``force_binary`` | ``rgb``).
        annotations: COCO JSON (default: the single ``*.json`` in ``input``).
        labels: label-map folder (default: ``input/labels`` beside ``input/images``).

    Raises:
        ValueError: unknown source/split, missing input, unusable annotation JSON.
    """
    if source not in SOURCE_TYPES:
        raise ValueError(f"--source must be one of {', '.join(SOURCE_TYPES)}, got {source!r}")
    if split not in SPLITS:
        raise ValueError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    if source != "shards" and not (fs.is_dir(input) or fs.is_file(input)):
        raise ValueError(f"--input {input!r}: no such file or directory")
    name = dataset or default_dataset_name(source, input)
    if source == "sa1b":
        items = list_sa1b(input, name)
    elif source == "coco":
        items = list_coco(input, annotations, name)
    elif source == "labelmap":
        items = list_labelmap(input, labels, mode, name)
    elif source == "images":
        items = list_images(input, name)
    else:
        from directsam.data.sources.shards import list_shards

        items = list_shards(input, dataset)
    from directsam.data.sources.listing import _dedupe_ids

    items = _dedupe_ids(items)
    if source in ("sa1b", "shards"):
        items = split_items(items, split)
    return select_items(items, num_samples, seed)


def _read_one(row: dict[str, Any]) -> tuple[bytes | None, bytes | None, str | None]:
    """(image bytes, annotation bytes, error) for one listing row."""
    if row["error"]:
        return None, None, row["error"]
    try:
        image = fs.read_uri(row["source_uri"], int(row["image_offset"]), int(row["image_size"]))
        annotation = None
        if row["has_annotation"]:
            annotation = bytes(row["annotation"])
        elif row["annotation_uri"]:
            annotation = fs.read_uri(
                row["annotation_uri"],
                int(row["annotation_offset"]),
                int(row["annotation_size"]),
            )
        return image, annotation, None
    except InputError as err:
        return None, None, str(err)


def read_items(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Batch function: listing rows -> source rows (bytes read, errors as values).

    Output columns: ``image_id, source_uri, dataset, image_bytes`` (compressed, None on
    failure), ``annotation`` (bytes or None), ``annotation_kind``, ``label_mode``, ``error``
    (None or ``"<code>: <detail>"``), plus any extra input columns (e.g. the labeling block).
    """
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
        images[i], annotations[i], errors[i] = image, annotation, error
    out[IMAGE_BYTES], out[ANNOTATION], out[ERROR] = images, annotations, errors
    return out


def items_dataset(items: list[SourceItem], rows_per_block: int = 64) -> ray.data.Dataset:
    """A dataset of listing rows (small), split so that reads run as parallel tasks."""
    import ray.data

    rows = [item.to_row() for item in items]
    blocks = max(1, min(len(rows), -(-len(rows) // rows_per_block)))
    return ray.data.from_items(rows, override_num_blocks=blocks)


def _webdataset_rows(
    batch: dict[str, np.ndarray], dataset: str, tar_uris: dict[str, str] | None = None
) -> dict[str, np.ndarray]:
    """``read_webdataset`` rows -> source rows; ``tar_uris`` maps Ray's ``__url__`` (a path
    inside the filesystem, e.g. ``bucket/key.tar``) back to the URI the user gave."""
    tar_uris = tar_uris or {}
    n = len(batch["__key__"])
    jpgs = batch.get("jpg", np.full(n, None, dtype=object))
    # A key with only a JSON member is not an input image (as in the listing).
    keep = np.array([j is not None for j in jpgs], dtype=bool)
    keys, jpgs = batch["__key__"][keep], jpgs[keep]
    urls = [tar_uris.get(str(u), str(u)) for u in batch["__url__"][keep]]
    jsons = batch.get("json", np.full(n, None, dtype=object))[keep]
    n = len(keys)
    out: dict[str, np.ndarray] = {
        IMAGE_ID: np.array([_sa1b_id(str(k)) for k in keys], dtype=object),
        SOURCE_URI: np.array(
            [f"{u}{fs.TAR_SEP}{k}.jpg" for k, u in zip(keys, urls, strict=True)], dtype=object
        ),
        DATASET: np.array([dataset] * n, dtype=object),
        IMAGE_BYTES: jpgs,
        ANNOTATION: jsons,
        ANNOTATION_KIND: np.array(["sa1b"] * n, dtype=object),
        LABEL_MODE: np.array([""] * n, dtype=object),
    }
    errors = np.empty(n, dtype=object)
    for i in range(n):
        if jsons[i] is None:
            errors[i] = f"{ANNOTATION_MISSING}: {out[SOURCE_URI][i]}: no json member"
    out[ERROR] = errors
    return out


def read_source(
    source: str,
    input: str,
    *,
    dataset: str | None = None,
    num_samples: int | None = None,
    seed: int | None = None,
    split: str = "all",
    mode: str = "single_channel",
    annotations: str | None = None,
    labels: str | None = None,
) -> ray.data.Dataset:
    """A Ray dataset of source rows (see :func:`read_items` for columns), one per input image.

    Arguments as :func:`list_source`. A full read of SA-1B tars streams them with
    ``ray.data.read_webdataset(decoder=None)`` (no driver listing, bytes stay compressed);
    every other case reads the driver's sorted listing in parallel tasks.
    """
    import ray.data

    if source == "sa1b" and num_samples is None and split == "all":
        kind, tars = sa1b_layout(input)
        if kind == "tars":
            name = dataset or default_dataset_name(source, input)
            filesystem, _, _ = fs.resolve(tars[0])
            paths = [fs.resolve(t)[1] for t in tars]
            # One filesystem object for every tar: ours (cached, or registered) rather than
            # Ray's own resolution, so that __url__ is the path inside it and maps back.
            ds = ray.data.read_webdataset(
                paths, filesystem=filesystem, decoder=None, suffixes=["jpg", "json"]
            )
            tar_uris = dict(zip(paths, tars, strict=True))
            return ds.map_batches(
                _webdataset_rows, fn_kwargs={"dataset": name, "tar_uris": tar_uris}, batch_size=64
            )
    items = list_source(
        source,
        input,
        dataset=dataset,
        num_samples=num_samples,
        seed=seed,
        split=split,
        mode=mode,
        annotations=annotations,
        labels=labels,
    )
    return items_dataset(items).map_batches(read_items, batch_size=16)


def source_uri_basename(uri: str) -> str:
    """Last path component of a source URI (tar members: the member name)."""
    _, member = fs.split_member(uri)
    return os.path.basename(member or uri)
