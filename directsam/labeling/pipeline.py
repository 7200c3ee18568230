"""Stage 2 on Ray Data: plan -> read + decode (CPU) -> model (GPU actor pool) -> RLE -> one
atomically written Parquet shard per block.

The driver owns the plan and the writes. It plans the input (tar objects, or the sorted
listing of a folder/COCO source as one Arrow table), takes the generation's lease, skips
blocks already on disk, streams the rest through Ray Data and writes each block as soon as all
of its rows have come back (``directsam.labeling.units`` says when that is: a known id list
for listed blocks, the closing row's count for tar chunks). Every input row comes back exactly
once (errors are values, never dropped blocks), so a block is complete or not written.

    plan_source -> make_work -> Lease -> _check_plan -> scan -> build_dataset -> _collect
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict
from typing import Any

from directsam.config import ConfigError
from directsam.data.sources import fs, plan_source
from directsam.data.sources.shards import layout
from directsam.data.sources.shards.counts import shard_counts
from directsam.data.sources.store import resolve_options
from directsam.labeling.collect import collect_blocks
from directsam.labeling.config import LabelConfig
from directsam.labeling.lease import Lease
from directsam.labeling.stages import (
    LabelPredictor,
    encode_pseudo,
    prepare_rows,
)
from directsam.labeling.units import ListedWork, TarWork, make_work
from directsam.schema import (
    CHECKPOINT,
    CHECKPOINT_SHA,
    RESOLUTION,
    SCHEMA_VERSION,
    THICKNESS,
    THRESHOLD,
)

# Plan keys that define what a generation's shards mean: a re-run must agree on all of them.
PLAN_KEYS = (
    "resolution",
    "threshold",
    "thickness",
    "checkpoint_sha",
    "rows_per_shard",
    "ids_sha256",
    "tars_sha256",
)
_PLAN_FLAGS = {
    "resolution": "--resolution",
    "threshold": "--threshold",
    "thickness": "--thickness",
    "checkpoint_sha": "--checkpoint",
    "rows_per_shard": "--rows-per-shard",
    "ids_sha256": "--input/--num-samples",
    "tars_sha256": "--input/--num-samples/--split",
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


def _changed_tars(old: dict[str, Any], new: dict[str, Any]) -> str:
    before = {t["uri"]: t for t in old.get("tars") or []}
    after = {t["uri"]: t for t in new.get("tars") or []}
    changed = [u for u in sorted(set(before) & set(after)) if before[u] != after[u]]
    added, gone = sorted(set(after) - set(before)), sorted(set(before) - set(after))
    parts = [
        f"{u} changed (size/ETag {before[u]['size']}/{before[u]['version']} on disk "
        f"vs {after[u]['size']}/{after[u]['version']} now)"
        for u in changed[:3]
    ]
    parts += [f"{u} is new" for u in added[:3]] + [f"{u} is gone" for u in gone[:3]]
    return "; ".join(parts)


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
        tars = _changed_tars(old, plan) if "tars_sha256" in diffs else ""
        raise ConfigError(
            f"--output {generation} already holds a generation with other settings ({what}"
            f"{'; ' + tars if tars else ''}); use another --output, or the original settings "
            "and input to resume"
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
    work: ListedWork | TarWork,
    cfg: LabelConfig,
    thickness: int,
    compute: dict[str, Any],
    store: Any,
) -> Any:
    """The Ray Data pipeline over the pending blocks (each row with its ``block``)."""
    import ray.data

    res = cfg.model.resolution
    ds = work.dataset(max(1, cfg.compute.decode_batch_size))
    # [1] CPU: read bytes (listed rows; tar rows arrive with theirs), decode, resize, human
    # boundary (parallel tasks, 1 CPU each). An explicit task-pool size other than the actor
    # pool's keeps Ray Data from fusing this stage into the model actors (Task->Actor fusion),
    # where it would run serially.
    gpu_decode = bool(compute.get("gpu_decode"))  # then [1] reads headers, [2] decodes
    ds = ds.map_batches(
        prepare_rows,
        fn_kwargs={
            "resolution": res,
            "thickness": thickness,
            "decode_images": not gpu_decode,
            "store": store,
        },
        batch_size=cfg.compute.decode_batch_size,
        num_cpus=1,
        compute=ray.data.TaskPoolStrategy(size=compute["decode_tasks"]),
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


def run_labeling(cfg: LabelConfig, log: Any = print) -> dict[str, Any]:
    """Label one dataset; returns the summary (counts, throughput, paths).

    Ray must be initialised. Re-running the same job skips finished blocks; settings that
    would change finished shards are refused (see :data:`PLAN_KEYS`); a second run on the same
    output generation while this one holds its lease is refused (``labeling.lease``).
    """
    from directsam.config import to_dict
    from directsam.model.spec import checkpoint_sha
    from directsam.tracking import lineage

    src = cfg.source
    try:
        plan = plan_source(src, cfg.object_store.options())
        store, (output,) = resolve_options(plan.store, (cfg.output,))
    except ValueError as err:
        raise ConfigError(str(err)) from err
    fs.set_store(store)
    thickness = cfg.thickness
    if src.type == "shards":
        thickness = int(layout.generation_plan(src.input)["thickness"])  # carried forward unchanged
    dataset = plan.dataset
    sha = checkpoint_sha(cfg.model.checkpoint)
    generation = layout.generation_dir(output, dataset, sha)
    work = make_work(plan, cfg.compute.rows_per_shard)
    constants = {
        RESOLUTION: cfg.model.resolution,
        CHECKPOINT: cfg.model.checkpoint,
        CHECKPOINT_SHA: sha,
        THRESHOLD: float(cfg.model.threshold),
        THICKNESS: thickness,
    }
    plan_doc = {
        "dataset": dataset,
        "source": asdict(src),
        **constants,
        "rows_per_shard": cfg.compute.rows_per_shard,
        **work.plan_keys,
        "schema_version": SCHEMA_VERSION,
        "lineage": lineage(),
    }
    with Lease(generation, ttl_s=cfg.compute.lease_ttl_s) as lease:
        _check_plan(generation, plan_doc)
        layout.clean_temp_files(generation)
        work.scan(generation)
        what = (
            f"{work.num_inputs} images in {len(work.keys)} blocks"
            if isinstance(work, ListedWork)
            else f"{len(work.units)} tars"
        )
        kept = len(work.done) + len(work.already_written())  # on disk, not rewritten
        log(
            f"{dataset}: {what} -> {generation}; {kept} blocks already written, "
            f"{len(work.pending)} {'blocks' if isinstance(work, ListedWork) else 'tars'} to do"
        )
        stats = _run_pending(cfg, work, generation, constants, thickness, store, lease, log)
        files = layout.part_files(generation)
        counts = shard_counts(files)
        complete = work.complete()
        summary = {
            "dataset": dataset,
            "generation": generation,
            "checkpoint": cfg.model.checkpoint,
            "checkpoint_sha": sha,
            "plan": plan.kind,
            "num_inputs": work.num_inputs
            if work.num_inputs is not None
            else (counts["num_rows"] if complete else None),
            "num_units": len(work.keys) if isinstance(work, ListedWork) else len(work.units),
            "num_blocks": len(work.keys)
            if isinstance(work, ListedWork)
            else len(files),
            "blocks_skipped": kept,
            "blocks_written": len(work.written),
            "units_to_retry": sorted(getattr(work, "retrying", set())),
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
    if isinstance(work, ListedWork):
        where = f"{len(work.done) + len(work.written)}/{len(work.keys)} blocks"
    else:
        where = f"{summary['num_blocks']} blocks of {len(work.units)} tars"
    log(
        f"{dataset}: {counts['num_rows']} rows ({counts['num_good']} good, "
        f"{counts['num_failed']} failed) in {where}"
        + ("" if complete else " (incomplete: re-run the same command to finish)")
    )
    for unit in summary["units_to_retry"]:
        log(f"  read failed after every retry in {unit}: a re-run retries its unread images")
    for reason in counts["first_errors"]:
        log(f"  failed: {reason}")
    return summary


def _run_pending(
    cfg: LabelConfig,
    work: ListedWork | TarWork,
    generation: str,
    constants: dict[str, Any],
    thickness: int,
    store: Any,
    lease: Lease,
    log: Any,
) -> dict[str, Any]:
    stats: dict[str, Any] = {
        "images_processed": 0,
        "wall_s": 0.0,
        "images_per_s": 0.0,
        "steady_images_per_s": 0.0,
        "duplicate_rows_ignored": 0,
    }
    limit = cfg.compute.max_blocks if cfg.compute.max_blocks is not None else float("inf")
    if not work.pending or limit == 0:
        return stats
    compute = resolve_compute(cfg)
    where = "in the model actors (GPU)" if compute.get("gpu_decode") else "in CPU tasks"
    log(f"image decode: {where}")
    _configure_data_context()
    ds = build_dataset(work, cfg, thickness, compute, store)
    start = time.perf_counter()
    count, first, last, after_first = collect_blocks(
        ds,
        work,
        generation,
        constants,
        lease,
        limit,
        cfg.model.resolution,
        cfg.compute.progress_interval_s,
    )
    wall = time.perf_counter() - start
    stats["images_processed"], stats["wall_s"] = count["rows"], round(wall, 3)
    stats["duplicate_rows_ignored"] = count["duplicates"]
    stats["images_per_s"] = round(count["rows"] / wall, 3) if wall > 0 else 0.0
    if first is not None and last is not None and last > first:
        stats["steady_images_per_s"] = round(after_first / (last - first), 3)
    return stats
