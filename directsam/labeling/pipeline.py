"""Stage 2 on Ray Data: list -> blocks -> read + decode (CPU) -> model (GPU actor pool) -> RLE
-> one atomically written Parquet shard per input block.

The driver owns the plan and the writes: it lists the input in sorted-id order, cuts it into
blocks of ``rows_per_shard``, skips blocks already on disk, streams the rest through Ray Data
and writes each block as soon as all of its rows have come back. Every input row comes back
exactly once (errors are values, never dropped blocks), so a block is complete or not written.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict
from typing import Any

from directsam.config import ConfigError
from directsam.data.sources import fs, list_source
from directsam.data.targets import cell_text
from directsam.labeling import layout
from directsam.labeling.config import LabelConfig
from directsam.labeling.stages import (
    BLOCK,
    HUMAN_COUNTS,
    PSEUDO_COUNTS,
    LabelPredictor,
    encode_pseudo,
    prepare_rows,
)
from directsam.labeling.writer import (
    BlockPlan,
    block_status,
    block_table,
    clean_temp_files,
    ids_sha256,
    plan_blocks,
    rle_cell,
    shard_counts,
    write_block,
)
from directsam.schema import (
    CHECKPOINT,
    CHECKPOINT_SHA,
    DATASET,
    ERROR,
    HEIGHT,
    HUMAN_BOUNDARY,
    IMAGE_ID,
    PSEUDO_BOUNDARY,
    RESOLUTION,
    SCHEMA_VERSION,
    SOURCE_URI,
    THICKNESS,
    THRESHOLD,
    WIDTH,
)

# Plan keys that define what a generation's shards mean: a re-run must agree on all of them.
PLAN_KEYS = (
    "resolution",
    "threshold",
    "thickness",
    "checkpoint_sha",
    "rows_per_shard",
    "ids_sha256",
)
_PLAN_FLAGS = {
    "resolution": "--resolution",
    "threshold": "--threshold",
    "thickness": "--thickness",
    "checkpoint_sha": "--checkpoint",
    "rows_per_shard": "--rows-per-shard",
    "ids_sha256": "--input/--num-samples",
}


def resolve_compute(cfg: LabelConfig) -> dict[str, Any]:
    """Device and actor resources from the config and the connected cluster.

    Raises:
        ConfigError: CUDA requested without GPUs, or actors that would take every CPU (Ray
            Data then has no slot left for reads and hangs, ray#44687).
    """
    import ray

    resources = ray.cluster_resources()
    gpus, cpus = resources.get("GPU", 0.0), resources.get("CPU", 0.0)
    device = cfg.model.device
    if device == "auto":
        device = "cuda" if gpus >= 1 else "cpu"
    actors = cfg.compute.gpu_actors
    # GPU decode path: the actors get JPEG bytes and decode them (issue 16, docs/SIZING.md).
    from directsam.inference.gpu_decode import resolve_image_decode

    gpu_decode = resolve_image_decode(cfg.compute.image_decode, device)
    tasks = cfg.compute.decode_tasks or max(1, int(cpus))
    if tasks == actors:
        tasks += 1  # equal sizes would let Ray fuse decode into the actors (see build_dataset)
    if device == "cuda":
        need = actors * cfg.compute.gpus_per_actor
        if need > gpus:
            raise ConfigError(
                f"--gpu-actors {actors} x {cfg.compute.gpus_per_actor} GPU needs {need} GPUs; "
                f"the cluster has {gpus:g}"
            )
        return {
            "device": "cuda",
            "num_gpus": cfg.compute.gpus_per_actor,
            "num_cpus": None,
            "decode_tasks": tasks,
            "gpu_decode": gpu_decode,
        }
    if actors * cfg.compute.cpus_per_actor >= cpus:
        raise ConfigError(
            f"--gpu-actors {actors} CPU model actors x {cfg.compute.cpus_per_actor} CPU would take "
            f"all {cpus:g} CPUs; leave at least one for reading and decoding"
        )
    return {
        "device": "cpu",
        "num_gpus": None,
        "num_cpus": cfg.compute.cpus_per_actor,
        "decode_tasks": tasks,
        "gpu_decode": gpu_decode,
    }


def _check_plan(generation: str, plan: dict[str, Any]) -> None:
    old = layout.read_json(fs.join(generation, layout.PLAN_FILE))
    if old is None:
        layout.write_json_atomic(fs.join(generation, layout.PLAN_FILE), plan)
        return
    diffs = [k for k in PLAN_KEYS if old.get(k) != plan.get(k)]
    if diffs:
        what = "; ".join(
            f"{_PLAN_FLAGS[k]}: {old.get(k)!r} on disk vs {plan.get(k)!r} now" for k in diffs
        )
        raise ConfigError(
            f"--output {generation} already holds a generation with other settings ({what}); "
            "use another --output, or the original settings to resume"
        )


def _configure_data_context() -> None:
    import ray.data

    ctx = ray.data.DataContext.get_current()
    tty = sys.stderr.isatty()
    ctx.enable_progress_bars = tty
    ctx.enable_operator_progress_bars = tty
    ctx.max_errored_blocks = 0  # a dropped block would be lost rows: failures are row values
    ctx.execution_options.preserve_order = False


def build_dataset(
    rows: list[dict[str, Any]], cfg: LabelConfig, thickness: int, compute: dict[str, Any]
) -> Any:
    """The Ray Data pipeline over listing rows (each with its ``block``)."""
    import ray.data

    res = cfg.model.resolution
    per_block = max(1, cfg.compute.decode_batch_size)
    ds = ray.data.from_items(rows, override_num_blocks=max(1, -(-len(rows) // per_block)))
    # [1] CPU: read bytes, decode, resize, human boundary (parallel tasks, 1 CPU each).
    # An explicit task-pool size other than the actor pool's keeps Ray Data from fusing this
    # stage into the model actors (Task->Actor fusion), where it would run serially.
    tasks = compute["decode_tasks"]
    gpu_decode = bool(compute.get("gpu_decode"))  # then [1] reads headers, [2] decodes
    ds = ds.map_batches(
        prepare_rows,
        fn_kwargs={"resolution": res, "thickness": thickness, "decode_images": not gpu_decode},
        batch_size=cfg.compute.decode_batch_size,
        num_cpus=1,
        compute=ray.data.TaskPoolStrategy(size=tasks),
    )
    # [2] Model: a fixed-size actor pool, one model per actor, explicit batch size.
    model_kwargs = {
        "checkpoint": cfg.model.checkpoint,
        "resolution": res,
        "threshold": cfg.model.threshold,
        "device": compute["device"],
        "dtype": cfg.model.dtype,
        "compile": cfg.model.compile,
        "channels_last": cfg.model.channels_last,
        "allow_pickle": cfg.model.allow_pickle,
        "image_decode": cfg.compute.image_decode if gpu_decode else "cpu",
    }
    resources = {k: compute[k] for k in ("num_gpus", "num_cpus") if compute.get(k) is not None}
    ds = ds.map_batches(
        LabelPredictor,
        fn_constructor_kwargs=model_kwargs,
        batch_size=cfg.compute.batch_size,
        compute=ray.data.ActorPoolStrategy(size=cfg.compute.gpu_actors),
        **resources,
    )
    # [3] CPU: bit-packed maps -> RLE strings (keeps pycocotools off the model actors).
    return ds.map_batches(
        encode_pseudo, fn_kwargs={"resolution": res}, batch_size=cfg.compute.batch_size, num_cpus=1
    )


def _rows_of(batch: dict[str, Any], res: int) -> list[tuple[int, str, dict[str, Any]]]:
    out = []
    for i in range(len(batch[IMAGE_ID])):
        err = cell_text(batch[ERROR][i])
        out.append(
            (
                int(batch[BLOCK][i]),
                str(batch[IMAGE_ID][i]),
                {
                    SOURCE_URI: str(batch[SOURCE_URI][i]),
                    DATASET: str(batch[DATASET][i]),
                    HEIGHT: int(batch[HEIGHT][i]),
                    WIDTH: int(batch[WIDTH][i]),
                    PSEUDO_BOUNDARY: rle_cell(cell_text(batch[PSEUDO_COUNTS][i]), res),
                    HUMAN_BOUNDARY: rle_cell(cell_text(batch[HUMAN_COUNTS][i]), res),
                    ERROR: err,
                },
            )
        )
    return out


def run_labeling(cfg: LabelConfig, log: Any = print) -> dict[str, Any]:
    """Label one dataset; returns the summary (counts, throughput, paths).

    Ray must be initialised. Re-running the same job skips finished blocks; settings that
    would change finished shards are refused (see :data:`PLAN_KEYS`).
    """
    from directsam.config import to_dict
    from directsam.model.spec import checkpoint_sha
    from directsam.tracking import lineage

    src = cfg.source
    items = list_source(
        src.type,
        src.input,
        dataset=src.dataset or None,
        num_samples=src.num_samples,
        seed=src.seed,
        split=src.split,
        mode=src.mode,
        annotations=src.annotations,
        labels=src.labels,
    )
    thickness = cfg.thickness
    if src.type == "shards":
        from directsam.data.sources.shards import generation_plan

        thickness = int(generation_plan(src.input)["thickness"])  # carried forward unchanged
    dataset = items[0].dataset if items else (src.dataset or "dataset")
    sha = checkpoint_sha(cfg.model.checkpoint)
    generation = layout.generation_dir(cfg.output, dataset, sha)
    blocks = plan_blocks([i.image_id for i in items], cfg.compute.rows_per_shard)
    constants = {
        RESOLUTION: cfg.model.resolution,
        CHECKPOINT: cfg.model.checkpoint,
        CHECKPOINT_SHA: sha,
        THRESHOLD: float(cfg.model.threshold),
        THICKNESS: thickness,
    }
    plan = {
        "dataset": dataset,
        "source": asdict(src),
        **constants,
        "rows_per_shard": cfg.compute.rows_per_shard,
        "num_items": len(items),
        "num_blocks": len(blocks),
        "ids_sha256": ids_sha256([i.image_id for i in items]),
        "schema_version": SCHEMA_VERSION,
        "lineage": lineage(),
    }
    _check_plan(generation, plan)
    clean_temp_files(generation)
    done = {b.index for b in blocks if block_status(generation, b)}
    pending = [b for b in blocks if b.index not in done]
    log(
        f"{dataset}: {len(items)} images in {len(blocks)} blocks -> {generation}; "
        f"{len(done)} blocks already written, {len(pending)} to do"
    )

    written, stats = _run_pending(cfg, items, pending, generation, constants, thickness, log)
    counts = shard_counts(layout.part_files(generation))
    complete = len(done) + len(written) == len(blocks)
    summary = {
        "dataset": dataset,
        "generation": generation,
        "checkpoint": cfg.model.checkpoint,
        "checkpoint_sha": sha,
        "num_inputs": len(items),
        "num_blocks": len(blocks),
        "blocks_skipped": len(done),
        "blocks_written": len(written),
        "complete": complete,
        **counts,
        **stats,
    }
    if complete:
        success = {
            **summary,
            "config": to_dict(cfg),
            "lineage": lineage(),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        layout.write_json_atomic(fs.join(generation, layout.SUCCESS_FILE), success)
    log(
        f"{dataset}: {counts['num_rows']} rows ({counts['num_good']} good, "
        f"{counts['num_failed']} failed) in {len(done) + len(written)}/{len(blocks)} blocks"
    )
    for reason in counts["first_errors"]:
        log(f"  failed: {reason}")
    return summary


def _run_pending(
    cfg: LabelConfig,
    items: list[Any],
    pending: list[BlockPlan],
    generation: str,
    constants: dict[str, Any],
    thickness: int,
    log: Any,
) -> tuple[list[int], dict[str, Any]]:
    from directsam.raycluster import ProgressLogger

    stats: dict[str, Any] = {
        "images_processed": 0,
        "wall_s": 0.0,
        "images_per_s": 0.0,
        "steady_images_per_s": 0.0,
    }
    if cfg.compute.max_blocks is not None:
        limit = cfg.compute.max_blocks
    else:
        limit = len(pending)
    if not pending or limit == 0:
        return [], stats
    by_id = {i.image_id: i for i in items}
    plans = {b.index: b for b in pending}
    rows = [dict(by_id[i].to_row(), block=b.index) for b in pending for i in b.image_ids]
    compute = resolve_compute(cfg)
    where = "in the model actors (GPU)" if compute.get("gpu_decode") else "in CPU tasks"
    log(f"image decode: {where}")
    _configure_data_context()
    ds = build_dataset(rows, cfg, thickness, compute)

    progress = ProgressLogger(len(rows), cfg.compute.progress_interval_s)
    buffers: dict[int, dict[str, dict[str, Any]]] = {}
    written: list[int] = []
    start = time.perf_counter()
    first = last = None
    seen_after_first = 0
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        now = time.perf_counter()
        batch_rows = _rows_of(batch, cfg.model.resolution)
        if first is None:
            first = now
        else:
            seen_after_first += len(batch_rows)
        last = now
        progress.update(len(batch_rows))
        for block, image_id, row in batch_rows:
            buf = buffers.setdefault(block, {})
            if image_id in buf:
                raise RuntimeError(f"row {image_id} of block {block} came back twice")
            buf[image_id] = row
        for block in [b for b, buf in buffers.items() if len(buf) == len(plans[b].image_ids)]:
            write_block(generation, block_table(plans[block], buffers.pop(block), constants), block)
            written.append(block)
            if len(written) >= limit:
                break
        if len(written) >= limit:
            break
    wall = time.perf_counter() - start
    progress.emit()
    if len(written) < limit:
        missing = {
            b: len(plans[b].image_ids) - len(buffers.get(b, {})) for b in plans if b not in written
        }
        raise RuntimeError(f"the pipeline ended with unwritten blocks (missing rows: {missing})")
    stats["images_processed"] = progress.count
    stats["wall_s"] = round(wall, 3)
    stats["images_per_s"] = round(progress.count / wall, 3) if wall > 0 else 0.0
    if first is not None and last is not None and last > first:
        stats["steady_images_per_s"] = round(seen_after_first / (last - first), 3)
    return written, stats
