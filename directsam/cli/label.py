"""``directsam label``: pseudo-label one dataset into Parquet shards (stage 2).

    directsam label --source sa1b --input DIR --output OUT --checkpoint SPEC \\
        --resolution 1800 --threshold 0.5 [--thickness 9] [--batch-size 8] [--gpu-actors N]
    directsam label --dataset LVIS --output OUT --checkpoint SPEC   # paths from the registry
    python ray_jobs/pseudo_label.py --config configs/pseudo_label.yaml
    python ray_jobs/pseudo_label.py --smoke-test     # generated sample, scratch:tiny, CPU
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from directsam.cli.command import standalone_main
from directsam.cli.flags import (
    MODEL_FIELDS,
    add_address_arg,
    add_model_args,
    add_smoke_test_arg,
    add_source_args,
    add_tracking_args,
    source_shorthands,
)
from directsam.config import ConfigError, add_config_args, config_from_args, flatten
from directsam.labeling.config import LabelConfig

# Flags of `directsam label` -> config keys (flags default to None = not given).
SHORTHANDS: dict[str, str] = {
    **source_shorthands(),
    "s3_endpoint": "object_store.endpoint",
    "s3_region": "object_store.region",
    "output": "output",
    "checkpoint": "model.checkpoint",
    "resolution": "model.resolution",
    "threshold": "model.threshold",
    "thickness": "thickness",
    "dtype": "model.dtype",
    "device": "model.device",
    "batch_size": "compute.batch_size",
    "gpu_actors": "compute.gpu_actors",
    "rows_per_shard": "compute.rows_per_shard",
    "max_blocks": "compute.max_blocks",
    "progress_interval": "compute.progress_interval_s",
    "address": "address",
    "tracking_uri": "tracking.uri",
    "experiment": "tracking.experiment",
}


def add_label_args(p: argparse.ArgumentParser) -> None:
    """Flags of the label job; each is a shorthand for a config key (shown in --help)."""
    add_config_args(p)
    g = p.add_argument_group("source")
    add_source_args(g)
    g.add_argument(
        "--s3-endpoint",
        default=None,
        help="S3-protocol endpoint for s3:// input/output, e.g. MinIO http://HOST:9000 "
        "(object_store.endpoint; default AWS_ENDPOINT_URL)",
    )
    g.add_argument("--s3-region", default=None, help="region of that store (object_store.region)")
    m = p.add_argument_group("model and outputs")
    m.add_argument("--output", default=None, help="output root (output)")
    add_model_args(
        m,
        ("checkpoint", "resolution", "threshold", "dtype", "device"),
        keys={f: f"model.{f}" for f in MODEL_FIELDS},
        helps={"checkpoint": "checkpoint spec", "threshold": "boundary threshold",
               "dtype": "auto|fp32|fp16|bf16", "device": "auto|cuda|cpu"},
    )  # fmt: skip
    m.add_argument(
        "--thickness", type=int, default=None, help="human boundary thickness (thickness)"
    )
    c = p.add_argument_group("compute")
    c.add_argument("--batch-size", type=int, default=None, help="model batch (compute.batch_size)")
    c.add_argument("--gpu-actors", type=int, default=None, help="model actors (compute.gpu_actors)")
    c.add_argument(
        "--rows-per-shard", type=int, default=None, help="input block size (compute.rows_per_shard)"
    )
    c.add_argument(
        "--max-blocks",
        type=int,
        default=None,
        help="stop after writing N blocks (compute.max_blocks)",
    )
    c.add_argument(
        "--progress-interval",
        type=float,
        default=None,
        help='seconds between "N/M images, img/s" lines (compute.progress_interval_s)',
    )
    add_address_arg(c, help="Ray address (address)")
    t = p.add_argument_group("tracking")
    add_tracking_args(t, {"tracking_uri": "(tracking.uri)", "experiment": "(tracking.experiment)",
                          "no_tracking": "(tracking.enabled)"})  # fmt: skip
    add_smoke_test_arg(
        p,
        help="tiny end-to-end run: configs/smoke/pseudo_label.yaml, a generated 8-image "
        "sample (unless --input), output under --output (default outputs/smoke_label), "
        "MLflow in a sqlite file there",
    )


def _smoke_args(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the smoke-test defaults into ``args`` (flags the user gave win)."""
    from pathlib import Path

    from directsam.cli import smoke

    out = Path(args.output or "outputs/smoke_label").resolve()
    args.output = str(out / "labels")
    args.config = args.config or smoke.smoke_preset("pseudo_label")
    if args.input is None:
        args.input = str(smoke.smoke_sample(out, num_images=8))
        args.source = args.source or "sa1b"
    if args.tracking_uri is None:
        args.tracking_uri = smoke.smoke_tracking_uri(out)
    args.overrides = ["tracking.enabled=true", *args.overrides]  # --no-tracking still wins
    return args


def build_config(args: argparse.Namespace) -> LabelConfig:
    """The job's config: preset < flags < ``--set``; ``--dataset NAME`` fills the source keys
    not given from the registry (``directsam.data.sources.registry``)."""
    from functools import partial

    from directsam.data.sources.registry import fill_from_registry

    fill = partial(fill_from_registry, default_registry=LabelConfig().source.registry)
    cfg = config_from_args(LabelConfig, args, SHORTHANDS, prepare=fill)
    if getattr(args, "no_tracking", False):
        cfg.tracking.enabled = False
    problems = cfg.check_ready()
    if problems:
        flags = {v: "--" + k.replace("_", "-") for k, v in SHORTHANDS.items()}
        raise ConfigError("; ".join(f"{flags.get(k, '--set ' + k)} {m}" for k, m in problems))
    return cfg


def preflight(cfg: LabelConfig) -> str | None:
    """Every flag of the label job checked before Ray starts (one line naming the flag);
    returns the tracking URI (None with ``--no-tracking``)."""
    from directsam import preflight as pf

    src = cfg.source
    pf.check_source(src)
    pf.check_output_dir(cfg.output, "--output")
    pf.check_checkpoint(cfg.model.checkpoint, "--checkpoint", cfg.model.allow_pickle)
    return pf.check_tracking(cfg.tracking.uri, cfg.tracking.enabled)


def run_job(cfg: LabelConfig, log: Any = print) -> dict[str, Any]:
    """Connect to Ray, label, and record the run in MLflow (driver only, best effort).

    The summary's ``tracking_warning`` is set when the MLflow server did not take every record
    (they are in the spool it names); the labels are complete either way.
    """
    from directsam.config import config_hash
    from directsam.data.sources.store import resolve_options, worker_env
    from directsam.labeling.pipeline import run_labeling
    from directsam.raycluster import init_ray
    from directsam.tracking import get_tracker
    from directsam.tracking.spool import spool_dir_beside

    # The endpoint (flag, config or the URIs' ?endpoint_override=) reaches every worker through
    # the job's runtime env; read tasks also get it as an argument. Credentials stay with each
    # node's own AWS chain.
    store, _ = resolve_options(cfg.object_store.options(), (cfg.source.input, cfg.output))
    init_ray(cfg.address, env_vars=worker_env(store))
    # Same job (same output and label-defining settings) = same MLflow run when resumed.
    shape = (
        "source",
        "output",
        "thickness",
        "model.checkpoint",
        "model.resolution",
        "model.threshold",
        "compute.rows_per_shard",
    )
    name = f"label-{cfg.source.dataset or cfg.source.type}-{config_hash(cfg, shape)}"
    tracker = get_tracker(
        cfg.tracking.enabled,
        cfg.tracking.uri,
        cfg.tracking.experiment,
        name,
        flatten(cfg),
        {
            "directsam.checkpoint": cfg.model.checkpoint,
            "directsam.dataset": cfg.source.dataset or "",
        },
        spool=spool_dir_beside(cfg.output, name),
    )
    try:
        summary = run_labeling(cfg, log=log)
    except BaseException:
        tracker.end("FAILED")
        raise
    metrics = {
        k: summary[k]
        for k in (
            "num_rows",
            "num_good",
            "num_failed",
            "blocks_written",
            "blocks_skipped",
            "images_processed",
            "images_per_s",
            "steady_images_per_s",
            "wall_s",
        )
    }
    tracker.log_metrics(metrics)
    tracker.set_tags(
        {
            "directsam.generation": summary["generation"],
            "directsam.checkpoint_sha": summary["checkpoint_sha"],
        }
    )
    tracker.end("FINISHED")
    summary["mlflow_run_id"] = tracker.run_id
    summary["tracking_warning"] = tracker.warning()
    return summary


def _run(args: argparse.Namespace) -> int:
    import json

    if getattr(args, "smoke_test", False):
        args = _smoke_args(args)
    cfg = build_config(args)
    preflight(cfg)
    try:
        summary = run_job(cfg)
    except ValueError as err:  # listing / plan problems name their flag
        raise ConfigError(str(err)) from err
    skip = ("first_errors", "tracking_warning")
    print(json.dumps({k: v for k, v in summary.items() if k not in skip}, default=str))
    if summary["tracking_warning"]:
        print(f"directsam label: {summary['tracking_warning']}", file=sys.stderr)
    return 0 if summary["num_good"] > 0 or summary["num_rows"] == 0 else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``label`` subcommand."""
    p = subparsers.add_parser(
        "label",
        help="pseudo-label a dataset into Parquet shards (stage 2)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_label_args(p)
    p.set_defaults(func=_run)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ray_jobs/pseudo_label.py`` (same flags as ``directsam label``)."""
    return standalone_main("pseudo_label", add_label_args, _run, argv, description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
