"""Evaluation: one Ray Data model pass -> probability cache -> per-threshold metrics (CPU only).

``build_cache`` runs ``read_source -> decode_rows -> CachePredictor actors -> Parquet`` once per
(checkpoint, dataset, resolution, ...) and reuses a committed cache afterwards. ``score_cache``
turns a cache into the seed's metrics at one threshold and tolerance without touching the model,
which is what makes a threshold sweep nearly free.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from directsam import schema
from directsam.config import ConfigError
from directsam.evaluation import cache as cache_mod
from directsam.evaluation.config import EvalConfig
from directsam.metrics import table

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- model stage


class CachePredictor:
    """Ray Data actor: decoded rows -> cache rows (quantised probabilities + GT boundary RLE).

    Works without Ray on a plain dict batch (``decode_rows`` output): ``image`` uint8
    (B, R, R, 3), ``target`` uint8 (B, R, R) when a GT exists, ``error`` str|None per row.
    A model failure marks the batch's rows ``model_failed`` instead of killing the job.
    """

    def __init__(self, checkpoint: str, resolution: int, device: str = "auto", dtype: str = "auto"):
        from directsam.inference.predictor import BoundaryPredictor

        self.resolution = resolution
        self.predictor = BoundaryPredictor(
            checkpoint, device=device, dtype=dtype, resolution=resolution
        )

    def __call__(self, batch: dict[str, np.ndarray]) -> Any:
        import pyarrow as pa

        from directsam.data.rle import mask_to_rle

        ids = [str(x) for x in batch[schema.IMAGE_ID]]
        n = len(ids)
        errors: list[str | None] = [_none_if_empty(e) for e in batch.get(schema.ERROR, [None] * n)]
        ok = [i for i in range(n) if errors[i] is None]
        probs: list[bytes | None] = [None] * n
        if ok:
            try:
                images = [np.asarray(batch["image"][i]) for i in ok]
                q = cache_mod.quantize_probs(
                    self.predictor.predict(images, out_size=self.resolution)
                )
                for j, i in enumerate(ok):
                    probs[i] = q[j].tobytes()
            except Exception as err:  # noqa: BLE001 - one bad batch becomes failed rows
                for i in ok:
                    errors[i] = f"{schema.MODEL_FAILED}: {ids[i]}: {type(err).__name__}: {err}"[
                        :500
                    ]
        targets = batch.get("target")
        has_gt = batch.get("has_target")
        gts: list[dict | None] = [None] * n
        for i in range(n):
            if errors[i] is None and targets is not None and (has_gt is None or bool(has_gt[i])):
                gts[i] = mask_to_rle(np.asarray(targets[i]).astype(bool))
        columns = {
            schema.IMAGE_ID: ids,
            schema.DATASET: [str(x) for x in batch[schema.DATASET]],
            schema.SOURCE_URI: [str(x) for x in batch[schema.SOURCE_URI]],
            schema.HEIGHT: [int(x) for x in batch.get(schema.HEIGHT, [0] * n)],
            schema.WIDTH: [int(x) for x in batch.get(schema.WIDTH, [0] * n)],
            schema.RESOLUTION: [self.resolution] * n,
            cache_mod.PROBS_U8: probs,
            cache_mod.GT_BOUNDARY: gts,
            schema.ERROR: errors,
        }
        return pa.Table.from_pydict(columns, schema=cache_mod.cache_arrow_schema())


def decode_for_eval(
    batch: dict[str, np.ndarray], resolution: int, thickness: int
) -> dict[str, np.ndarray]:
    """``decode_rows`` with the ``error`` column normalised first.

    An all-null ``error`` column comes back from Arrow as float NaN; NaN is truthy, so it would
    read as an error. Normalising here keeps every good row good whatever the block format.
    """
    from directsam.data.targets import decode_rows

    if schema.ERROR in batch:
        errors = np.empty(len(batch[schema.ERROR]), dtype=object)
        errors[:] = [_none_if_empty(e) for e in batch[schema.ERROR]]
        batch = {**batch, schema.ERROR: errors}
    return decode_rows(batch, resolution=resolution, thickness=thickness, keep_image=True)


def _none_if_empty(value: Any) -> str | None:
    if value is None or (isinstance(value, float | np.floating) and math.isnan(value)):
        return None
    text = str(value)
    return text or None


# ----------------------------------------------------------------------------- cache build


@dataclass
class CacheResult:
    """A committed cache: where it is, its manifest, and whether this call ran the model."""

    location: str
    manifest: dict[str, Any]
    built: bool


def resolve_checkpoint_sha(spec: str) -> str:
    """``checkpoint_sha`` of ``spec``; a hub id not yet cached is fetched (weights file only)."""
    from directsam.model.spec import checkpoint_sha, is_hub_id

    try:
        return checkpoint_sha(spec)
    except FileNotFoundError:
        if not is_hub_id(spec):
            raise
        from huggingface_hub import hf_hub_download

        hf_hub_download(spec, "model.safetensors")
        return checkpoint_sha(spec)


def cluster_gpus() -> float:
    """GPUs in the connected Ray cluster (0 without Ray initialised)."""
    import ray

    return float(ray.cluster_resources().get("GPU", 0)) if ray.is_initialized() else 0.0


def cache_spec(
    cfg: EvalConfig, use_gpu: bool, checkpoint_sha: str | None = None
) -> cache_mod.CacheSpec:
    """The cache key fields of ``cfg`` (the checkpoint is identified by its weights)."""
    from directsam.raycluster import is_remote_uri

    def norm(path: str | None) -> str | None:
        import os

        if path is None or is_remote_uri(path):
            return path
        return os.path.abspath(path)

    src = cfg.source
    return cache_mod.CacheSpec(
        checkpoint_sha=checkpoint_sha or resolve_checkpoint_sha(cfg.checkpoint),
        dataset=cfg.dataset_name(),
        source=str(src.type),
        input=norm(src.input) or "",
        split=src.split,
        mode=src.mode,
        annotations=norm(src.annotations),
        labels=norm(src.labels),
        resolution=cfg.resolution,
        thickness=cfg.thickness,
        num_samples=src.num_samples,
        seed=src.seed,
        dtype=cfg.dtype,
        device_kind="gpu" if use_gpu else "cpu",
    )


def build_cache(cfg: EvalConfig, force: bool = False) -> CacheResult:
    """Run the model once over ``cfg``'s split and commit the cache; reuse a committed one.

    Needs an initialised Ray (``directsam.raycluster.init_ray``). GPU actors (one GPU each) are
    used when the cluster has GPUs and ``cfg.device`` allows it, else CPU actors.
    """
    import ray.data

    from directsam.data.sources import read_source

    use_gpu = cfg.device != "cpu" and cluster_gpus() >= 1
    if cfg.device == "cuda" and not use_gpu:
        raise RuntimeError("--device cuda: the Ray cluster has no GPU")
    spec = cache_spec(cfg, use_gpu)
    location = cache_mod.cache_location(cfg.cache_dir, spec)
    manifest = cache_mod.read_manifest(location)
    if manifest is not None and not force:
        logger.info("evaluation cache hit: %s", location)
        return CacheResult(location, manifest, built=False)

    staging = cache_mod.staging_location(location)
    cache_mod.prepare_staging(staging)
    start = time.perf_counter()
    num_actors = cfg.num_actors or (max(1, int(cluster_gpus())) if use_gpu else 1)
    try:
        try:
            ds = read_source(replace(cfg.source, dataset=cfg.dataset_name()))
        except ValueError as err:  # listing problems name their flag (--input, --split ...)
            raise ConfigError(str(err)) from err
        # CPU stage (Ray tasks): bytes -> RGB at R x R + GT boundary at thickness.
        ds = ds.map_batches(
            decode_for_eval,
            fn_kwargs={"resolution": cfg.resolution, "thickness": cfg.thickness},
            batch_size=cfg.batch_size,
            num_cpus=1,
        )
        # Model stage (Ray actors): a fixed pool, one GPU per actor when there are GPUs.
        gpu_args: dict[str, Any] = {"num_gpus": 1} if use_gpu else {"num_cpus": 1}
        ds = ds.map_batches(
            CachePredictor,
            fn_constructor_kwargs={
                "checkpoint": cfg.checkpoint,
                "resolution": cfg.resolution,
                "device": "cuda" if use_gpu else "cpu",
                "dtype": cfg.dtype,
            },
            compute=ray.data.ActorPoolStrategy(size=num_actors),
            batch_size=cfg.batch_size,
            **gpu_args,
        )
        ds.write_parquet(staging, compression="zstd")
        counts = cache_mod.summarize_staging(staging)
    except BaseException:
        cache_mod.discard_staging(staging, location)
        raise
    seconds = time.perf_counter() - start
    cache_mod.record_model_pass(counts["num_rows"] - counts["num_errors"], seconds)
    from directsam.tracking import lineage

    manifest = cache_mod.commit_cache(
        staging,
        location,
        {"key": spec.key(), "spec": spec.__dict__, "checkpoint": cfg.checkpoint, **counts,
         "build_seconds": seconds, "num_actors": num_actors, "lineage": lineage()},
    )  # fmt: skip
    return CacheResult(location, manifest, built=True)


# ----------------------------------------------------------------------------- scoring


def score_image(
    gt: np.ndarray, probs_u8: np.ndarray, threshold: float, tolerance: int
) -> dict[str, float] | None:
    """Per-image values of one image (keyed by the table's ``per_image`` names: ``num_tokens,
    recall, precision, boundary_recall, f1``); None when it is skipped (GT empty after the border
    band).

    Args:
        gt: bool RxR GT boundary.
        probs_u8: uint8 RxR quantised probabilities.
    """
    from directsam.metrics import boundary_prf, effective_contour_recall

    pred = cache_mod.quantized_to_boundary(probs_u8, threshold)
    num_tokens, recall = effective_contour_recall(gt, pred, tolerance)
    if num_tokens < 0:
        return None
    precision, b_recall, f1 = boundary_prf(gt, pred, tolerance)
    values = {
        table.MEAN_NUM_TOKENS: num_tokens,
        table.MEAN_RECALL: recall,
        table.MEAN_PRECISION: precision,
        table.MEAN_BOUNDARY_RECALL: b_recall,
        table.MEAN_F1: f1,
    }
    return {m.per_image: float(v) for m, v in values.items()}


def score_images(location: str, threshold: float, tolerance: int) -> list[dict[str, Any]]:
    """Per-image results of a cache, sorted by image id.

    Each dict has ``image_id`` and ``status`` (``scored`` | ``skipped`` | ``failed``, see
    :mod:`directsam.metrics.table`); scored rows add :func:`score_image`'s values.
    """
    rows: list[dict[str, Any]] = []
    for item in cache_mod.iter_cache(location):
        if item.error is not None or item.probs_u8 is None:
            rows.append(
                {"image_id": item.image_id, table.STATUS: table.FAILED, "error": item.error}
            )
            continue
        result = (
            None if item.gt is None else score_image(item.gt, item.probs_u8, threshold, tolerance)
        )
        status = table.SKIPPED if result is None else table.SCORED
        rows.append({"image_id": item.image_id, table.STATUS: status, **(result or {})})
    rows.sort(key=lambda r: r["image_id"])
    return rows


def score_cache(cache_path: str, threshold: float, tolerance: int) -> dict[str, float]:
    """The evaluation metrics of a committed cache at one threshold and tolerance (CPU only).

    Returns:
        ``{name: float}`` for every metric of :data:`directsam.metrics.table.METRICS` (effective
        contour recall and tokens, image counts, boundary P/R/F1 at ``tolerance``); means are
        over scored images, NaN when none.
    """
    return table.aggregate(score_images(cache_path, threshold, tolerance), table.METRICS)
