"""Merged labels for stage 3: pseudo boundary OR human boundary, at the training resolution.

Readers pick one generation per dataset by checkpoint (spec or ``checkpoint_sha``,
``layout.select_generations``), so a newer generation never changes what an older training run
read. Failed rows are left out and counted (``counts.shard_counts``).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from directsam.data.sources.shards.counts import shard_counts
from directsam.data.sources.shards.layout import part_files, select_generations
from directsam.schema import (
    ANNOTATION,
    ANNOTATION_KIND,
    DATASET,
    ERROR,
    HUMAN_BOUNDARY,
    IMAGE_ID,
    PSEUDO_BOUNDARY,
    SOURCE_URI,
)

if TYPE_CHECKING:
    import ray.data

logger = logging.getLogger(__name__)
MERGED = "merged"  # RLE struct {size: [R, R], counts} of pseudo OR human at the read resolution


def merge_boundaries(
    pseudo: dict[str, Any], human: dict[str, Any] | None, resolution: int
) -> dict[str, Any]:
    """``pseudo OR human`` (RLE dicts at the shard resolution) as an RLE at ``resolution``."""
    from directsam.data.rle import mask_to_rle, rle_to_mask
    from directsam.data.targets import resize_boundary

    size = [int(v) for v in pseudo["size"]]
    if human is None and size == [resolution, resolution]:
        return {"size": size, "counts": pseudo["counts"]}
    mask = rle_to_mask(pseudo)
    if human is not None:
        mask |= rle_to_mask(human, expected_hw=tuple(size))
    return mask_to_rle(resize_boundary(mask, resolution))


def merge_rows(batch: dict[str, np.ndarray], resolution: int) -> dict[str, np.ndarray]:
    """Batch function: shard rows -> merged rows; rows with ``error`` set are dropped.

    Output columns: ``image_id, source_uri, dataset, merged`` (RLE dict), and for
    :func:`directsam.data.targets.decode_rows`: ``annotation`` (the merged RLE as JSON bytes)
    with ``annotation_kind = "shard"``.
    """
    from directsam.data.targets import cell_text

    keep = [i for i in range(len(batch[IMAGE_ID])) if cell_text(batch[ERROR][i]) is None]
    human = [h if isinstance(h, dict) else None for h in batch[HUMAN_BOUNDARY]]
    merged = [merge_boundaries(batch[PSEUDO_BOUNDARY][i], human[i], resolution) for i in keep]
    return {
        IMAGE_ID: np.array([batch[IMAGE_ID][i] for i in keep], dtype=object),
        SOURCE_URI: np.array([batch[SOURCE_URI][i] for i in keep], dtype=object),
        DATASET: np.array([batch[DATASET][i] for i in keep], dtype=object),
        MERGED: np.array(merged, dtype=object) if merged else np.empty(0, dtype=object),
        ANNOTATION: np.array([json.dumps(m).encode() for m in merged], dtype=object),
        ANNOTATION_KIND: np.array(["shard"] * len(keep), dtype=object),
    }


def _attach_images(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    from directsam.data.sources.fs import read_uri
    from directsam.schema import IMAGE_BYTES, InputError

    n = len(batch[IMAGE_ID])
    images = np.empty(n, dtype=object)
    errors = np.empty(n, dtype=object)
    for i in range(n):
        try:
            images[i] = read_uri(str(batch[SOURCE_URI][i]))
        except InputError as err:
            errors[i] = str(err)
    return {**batch, IMAGE_BYTES: images, ERROR: errors}


def read_merged_labels(
    shards: str,
    resolution: int,
    checkpoint: str | None = None,
    *,
    with_images: bool = False,
    allow_incomplete: bool = False,
) -> ray.data.Dataset:
    """Dataset of merged labels (pseudo OR human) at ``resolution``, failed rows excluded.

    Args:
        shards: output root, dataset folder or generation folder of ``directsam label``.
        resolution: side of the merged boundary (e.g. 1024 for stage 3).
        checkpoint: which generation (spec or sha) when a dataset has several.
        with_images: also read each image (``image_bytes`` + ``error`` columns), so that
            ``decode_rows(batch, resolution, thickness=1)`` yields ``image`` and ``target``.
        allow_incomplete: read generations that have no ``_SUCCESS.json`` yet.

    Returns:
        ``ray.data.Dataset`` with ``image_id, source_uri, dataset, merged, annotation,
        annotation_kind`` (see :func:`merge_rows`).
    """
    import ray.data

    gens = select_generations(shards, checkpoint, allow_incomplete)
    files = [f for g in gens for f in part_files(g)]
    counts = shard_counts(files, max_reasons=0)
    logger.info(
        "merged labels from %s: %d rows, %d failed rows excluded",
        gens,
        counts["num_rows"],
        counts["num_failed"],
    )
    cols = [IMAGE_ID, SOURCE_URI, DATASET, PSEUDO_BOUNDARY, HUMAN_BOUNDARY, ERROR]
    ds = ray.data.read_parquet(files, columns=cols)
    ds = ds.map_batches(merge_rows, fn_kwargs={"resolution": resolution}, batch_size=64)
    if with_images:
        ds = ds.map_batches(_attach_images, batch_size=16)
    return ds
