"""Probability cache: one model pass per (checkpoint, dataset, resolution, ...) stored as Parquet.

Layout: ``<cache_dir>/<key>/*.parquet`` plus ``_SUCCESS.json``; a folder without the marker is
incomplete and never read. Local caches are built in a staging folder and renamed into place
(atomic); remote ones (``s3://``) are written in place with the marker last. Rows (one per
image): ``image_id, dataset, source_uri, height, width, resolution, probs_u8`` (R*R bytes,
``round(p * 255)``, row-major), ``gt_boundary`` (COCO RLE struct at R x R, null without GT) and
``error`` (null when good). Threshold sweeps read this instead of running the model again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from directsam import schema
from directsam.atomic import publish_dir, write_atomic

CACHE_VERSION = 1
SUCCESS_FILE = "_SUCCESS.json"
PROBS_U8 = "probs_u8"
GT_BOUNDARY = "gt_boundary"

# Process-local count of model passes over a dataset, for tests and benchmarks: a cache hit
# leaves it unchanged. Builds always run from the driver, so one process sees every pass.
_PASSES: dict[str, float] = {"passes": 0, "images": 0, "seconds": 0.0}


def record_model_pass(images: int, seconds: float) -> None:
    """Count one model pass over ``images`` images that took ``seconds`` (wall, whole pipeline)."""
    _PASSES["passes"] += 1
    _PASSES["images"] += images
    _PASSES["seconds"] += seconds


def model_passes() -> dict[str, float]:
    """``{"passes": n, "images": m, "seconds": s}`` since the last :func:`reset_model_passes`."""
    return dict(_PASSES)


def reset_model_passes() -> None:
    """Zero the model-pass counter."""
    _PASSES.update(passes=0, images=0, seconds=0.0)


# ----------------------------------------------------------------------------- quantisation


def quantize_probs(probs: npt.NDArray[np.floating]) -> npt.NDArray[np.uint8]:
    """Probabilities in [0, 1] (any shape, float) -> uint8 ``round(p * 255)`` (same shape)."""
    return np.rint(np.clip(np.asarray(probs, dtype=np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)


def dequantize_probs(q: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
    """uint8 levels -> float64 probabilities ``q / 255`` (same shape)."""
    return np.asarray(q, dtype=np.float64) / 255.0


def threshold_lut(threshold: float) -> npt.NDArray[np.bool_]:
    """bool (256,): level ``q`` is boundary iff ``q / 255 >= threshold`` (float64, exact)."""
    return dequantize_probs(np.arange(256, dtype=np.uint8)) >= threshold


def quantized_to_boundary(q: npt.NDArray[np.uint8], threshold: float) -> npt.NDArray[np.bool_]:
    """uint8 HxW levels -> bool HxW prediction, equal to ``dequantize_probs(q) >= threshold``."""
    return threshold_lut(threshold)[q]


# ----------------------------------------------------------------------------- keys


@dataclass(frozen=True)
class CacheSpec:
    """Everything that determines the cached probabilities and GT boundaries."""

    checkpoint_sha: str
    dataset: str
    source: str
    input: str
    split: str
    mode: str
    annotations: str | None
    labels: str | None
    resolution: int
    thickness: int
    num_samples: int | None
    seed: int | None
    dtype: str
    device_kind: str

    def key(self) -> str:
        """``<dataset>-<R>px-<hash12>``: readable prefix, hash over every field."""
        text = json.dumps({"v": CACHE_VERSION, **asdict(self)}, sort_keys=True)
        digest = hashlib.sha256(text.encode()).hexdigest()[:12]
        slug = re.sub(r"[^A-Za-z0-9_.+-]+", "_", self.dataset).strip("_") or "dataset"
        return f"{slug}-{self.resolution}px-{digest}"


def _is_remote(location: str) -> bool:
    return "://" in location and not location.startswith("file://")


def _local(location: str) -> str:
    return location[len("file://") :] if location.startswith("file://") else location


def cache_location(cache_dir: str, spec: CacheSpec) -> str:
    """``<cache_dir>/<key>`` (absolute for local paths; URIs unchanged)."""
    if _is_remote(cache_dir):
        return cache_dir.rstrip("/") + "/" + spec.key()
    return os.path.join(os.path.abspath(_local(cache_dir)), spec.key())


def _filesystem(location: str) -> tuple[Any, str]:
    import pyarrow.fs as pafs

    if _is_remote(location):
        return pafs.FileSystem.from_uri(location)
    return pafs.LocalFileSystem(), os.path.abspath(_local(location))


def read_manifest(location: str) -> dict[str, Any] | None:
    """The cache's ``_SUCCESS.json`` as a dict, or None when the cache is absent/incomplete."""
    import pyarrow.fs as pafs

    fs, path = _filesystem(location)
    marker = f"{path}/{SUCCESS_FILE}"
    if fs.get_file_info(marker).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(marker) as fh:
        return json.loads(fh.read().decode())


def is_complete(location: str) -> bool:
    """True when ``location`` holds a committed cache (its marker exists)."""
    return read_manifest(location) is not None


def staging_location(location: str) -> str:
    """Where a build writes before commit: a sibling ``.staging-<key>-<uuid>`` (local) or
    ``location`` itself (remote stores have no atomic rename; the marker is the commit)."""
    if _is_remote(location):
        return location
    parent, key = os.path.split(location)
    return os.path.join(parent, f".staging-{key}-{uuid.uuid4().hex[:8]}")


def prepare_staging(staging: str) -> None:
    """Create an empty staging folder (clearing a remote one left by a failed build)."""
    fs, path = _filesystem(staging)
    fs.create_dir(path, recursive=True)
    if _is_remote(staging):
        fs.delete_dir_contents(path, missing_dir_ok=True)


def summarize_staging(staging: str) -> dict[str, int]:
    """Row counts of a written staging folder: ``{"num_rows", "num_errors", "num_with_gt"}``."""
    import pyarrow.compute as pc
    import pyarrow.dataset as pads

    fs, path = _filesystem(staging)
    table = pads.dataset(path, filesystem=fs, format="parquet").to_table(
        columns=[schema.ERROR, GT_BOUNDARY]
    )
    return {
        "num_rows": table.num_rows,
        "num_errors": table.num_rows - int(pc.sum(pc.is_null(table[schema.ERROR])).as_py() or 0),
        "num_with_gt": table.num_rows - table[GT_BOUNDARY].null_count,
    }


def commit_cache(staging: str, location: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """Write the marker into ``staging`` and move it to ``location``; returns the manifest kept.

    When another build committed ``location`` first, that cache wins and ``staging`` is removed.
    """
    manifest = {**manifest, "created_at": time.time(), "cache_version": CACHE_VERSION}
    fs, path = _filesystem(staging)
    text = json.dumps(manifest, indent=2, sort_keys=True, default=str)
    write_atomic(f"{path}/{SUCCESS_FILE}", text.encode(), filesystem=fs)
    if staging == location:
        return manifest
    existing = read_manifest(location)
    if existing is not None:
        shutil.rmtree(_local(staging), ignore_errors=True)
        return existing
    # An incomplete leftover at ``location`` is never read: safe to replace.
    publish_dir(_local(staging), _local(location))
    return manifest


def discard_staging(staging: str, location: str) -> None:
    """Remove a failed build's staging folder (local only; a remote one has no marker)."""
    if staging != location:
        shutil.rmtree(_local(staging), ignore_errors=True)


# ----------------------------------------------------------------------------- reading


@dataclass
class CachedImage:
    """One cached row, decoded."""

    image_id: str
    source_uri: str
    height: int
    width: int
    probs_u8: npt.NDArray[np.uint8] | None
    """uint8 RxR quantised probabilities; None for failed rows."""
    gt: npt.NDArray[np.bool_] | None
    """bool RxR GT boundary; None without annotation or for failed rows."""
    error: str | None


def iter_cache(
    location: str, image_ids: set[str] | None = None, batch_size: int = 16
) -> Iterator[CachedImage]:
    """Decoded rows of a committed cache, in storage order (sort by ``image_id`` if needed).

    Raises:
        FileNotFoundError: ``location`` has no committed cache.
    """
    import pyarrow.dataset as pads

    from directsam.data.rle import rle_to_mask

    if not is_complete(location):
        raise FileNotFoundError(
            f"no committed evaluation cache at {location} ({SUCCESS_FILE} missing)"
        )
    fs, path = _filesystem(location)
    columns = [schema.IMAGE_ID, schema.SOURCE_URI, schema.HEIGHT, schema.WIDTH, schema.RESOLUTION,
               PROBS_U8, GT_BOUNDARY, schema.ERROR]  # fmt: skip
    dataset = pads.dataset(path, filesystem=fs, format="parquet")
    flt = None
    if image_ids is not None:
        flt = pads.field(schema.IMAGE_ID).isin(sorted(image_ids))
    for batch in dataset.to_batches(columns=columns, filter=flt, batch_size=batch_size):
        for row in batch.to_pylist():
            res = int(row[schema.RESOLUTION])
            probs = None
            if row[PROBS_U8] is not None:
                probs = np.frombuffer(row[PROBS_U8], dtype=np.uint8).reshape(res, res)
            gt = None
            if row[GT_BOUNDARY] is not None and row[schema.ERROR] is None:
                gt = rle_to_mask(row[GT_BOUNDARY], (res, res), name=row[schema.IMAGE_ID])
            yield CachedImage(
                image_id=row[schema.IMAGE_ID],
                source_uri=row[schema.SOURCE_URI] or "",
                height=int(row[schema.HEIGHT] or 0),
                width=int(row[schema.WIDTH] or 0),
                probs_u8=probs,
                gt=gt,
                error=row[schema.ERROR],
            )


def cache_image_ids(location: str) -> list[str]:
    """Sorted image ids of a committed cache."""
    import pyarrow.dataset as pads

    fs, path = _filesystem(location)
    table = pads.dataset(path, filesystem=fs, format="parquet").to_table(columns=[schema.IMAGE_ID])
    return sorted(table[schema.IMAGE_ID].to_pylist())


def cache_arrow_schema() -> Any:
    """Arrow schema of a cache row (see the module docstring)."""
    import pyarrow as pa

    return pa.schema(
        [
            (schema.IMAGE_ID, pa.string()),
            (schema.DATASET, pa.string()),
            (schema.SOURCE_URI, pa.string()),
            (schema.HEIGHT, pa.int32()),
            (schema.WIDTH, pa.int32()),
            (schema.RESOLUTION, pa.int32()),
            (PROBS_U8, pa.binary()),
            (GT_BOUNDARY, schema.rle_arrow_type()),
            (schema.ERROR, pa.string()),
        ]
    )
