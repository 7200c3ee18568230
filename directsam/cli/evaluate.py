"""``directsam evaluate | sweep``: flags -> EvalConfig/SweepConfig -> Ray job -> report.

Named flags are shorthands for config keys (``--resolution`` = ``resolution``); precedence is
defaults < ``--config`` < flags < ``--set``. Flags default to None so the config stays the
single source of truth. Registration imports nothing heavy (no ray/torch/mlflow).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from directsam.cli.command import standalone_main
from directsam.cli.flags import (
    add_address_arg,
    add_smoke_test_arg,
    add_source_args,
    add_tracking_args,
    source_shorthands,
)
from directsam.evaluation.config import REGISTRY

# argparse dest -> help; the dest is the config key. Shared by evaluate and sweep.
EVAL_FLAGS: dict[str, str] = {
    "checkpoint": "checkpoint: hub id, directory or scratch:b0..b5",
    "resolution": "evaluation side R in px (default 1024)",
    "thickness": "GT boundary thickness at R (default 2)",
    "tolerance": "recall tolerance / border band in px (default 5)",
    "thresholds": "comma list, e.g. 0.1,0.2,0.3,0.4,0.5",
    "batch_size": "images per model call (default 4)",
    "num_actors": "predictor actors (default: #GPUs, else 1)",
    "device": "auto | cpu | cuda",
    "dtype": "auto | fp32 | fp16 | bf16 (part of the cache key)",
    "cache_dir": "probability cache root (default outputs/eval_cache)",
    "output": "local results folder (default outputs/eval)",
    "num_panels": "visual panels for the first N images (default 4)",
    "panel_threshold": "threshold of the panels (default: middle of --thresholds)",
}
# The tracking flags (directsam.cli.flags.add_tracking_args) and their help suffixes.
TRACKING_FLAGS: dict[str, str] = {
    "tracking_uri": "(default MLFLOW_TRACKING_URI or sqlite:///./mlflow.db) [tracking_uri]",
    "experiment": "(default directsam-eval) [experiment]",
}
SWEEP_FLAGS: dict[str, str] = {
    "tolerances": "comma list of tolerances to sweep (default: --tolerance)",
    "resolutions": "comma list of resolutions to sweep, one model pass each",
    "max_concurrent_trials": "Tune trials at once (default: cluster CPUs)",
    "cpus_per_trial": "CPUs per trial (default 1)",
    "storage_path": "Ray Tune storage (default <output>/ray_results)",
}
# The source flags (every SourceSpec field) and what their help adds for evaluation.
SOURCE_NOTES = {
    "type": "images has no annotations to score",
    "split": "default val",
    "num_samples": "default 100",
    "registry": f"default {REGISTRY}",
}
SMOKE = {
    "checkpoint": "scratch:tiny",
    "source.type": "sa1b",
    "source.split": "all",
    "resolution": 64,
    "source.num_samples": 4,
    "batch_size": 2,
    "num_panels": 1,
}


def _shorthands(sweep: bool) -> dict[str, str]:
    """argparse dest -> config key of every named flag of ``evaluate`` / ``sweep``."""
    own = {**EVAL_FLAGS, **TRACKING_FLAGS, **(SWEEP_FLAGS if sweep else {})}
    return {**source_shorthands(), **{dest: dest for dest in own}}


def _add_args(parser: argparse.ArgumentParser, sweep: bool) -> None:
    from directsam.config import add_config_args

    add_config_args(parser)
    flags = {**EVAL_FLAGS, **(SWEEP_FLAGS if sweep else {})}
    for dest, text in flags.items():
        # str everywhere: the config loader converts and names the flag on errors.
        parser.add_argument(
            "--" + dest.replace("_", "-"), dest=dest, default=None, help=f"{text} [{dest}]"
        )
    add_source_args(parser.add_argument_group("source"), typed=False, notes=SOURCE_NOTES)
    add_tracking_args(parser, {**TRACKING_FLAGS, "no_tracking": "[tracking=false]"},
                      {"no_tracking": "do not log to MLflow"}, no_tracking_dest="tracking")  # fmt: skip
    add_address_arg(parser)
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local Ray cluster")
    add_smoke_test_arg(
        parser,
        help="tiny end-to-end run: generated 4-image sample, scratch:tiny, 64 px, sqlite in --output",
    )


def _load(cls: type, args: argparse.Namespace, sweep: bool) -> Any:
    """The config: preset < smoke defaults < flags < ``--set``; ``--dataset NAME`` fills the
    source keys not given from the registry (``directsam.data.sources.registry``)."""
    from functools import partial

    from directsam.config import load_config
    from directsam.data.sources.registry import fill_from_registry

    shorthands = _shorthands(sweep)
    names = {key: "--" + dest.replace("_", "-") for dest, key in shorthands.items()}
    values: dict[str, Any] = {}
    if args.smoke_test:
        from directsam.cli import smoke

        values.update(SMOKE)
        out = Path(args.output or "outputs/smoke_eval")
        values["output"] = str(out)
        values["cache_dir"] = str(out / "cache")
        values["tracking_uri"] = smoke.smoke_tracking_uri(out)
        if args.input is None:
            values["source.input"] = str(smoke.smoke_sample(out, num_images=4))
    for dest, key in {**shorthands, "tracking": "tracking"}.items():
        if getattr(args, dest, None) is not None:
            values[key] = getattr(args, dest)
    return load_config(
        cls,
        path=args.config,
        overrides=args.overrides,
        values=values,
        flag_names=names,
        prepare=partial(fill_from_registry, default_registry=REGISTRY),
    )


def _start_ray(args: argparse.Namespace) -> None:
    from directsam.raycluster import init_ray

    init_ray(args.address, num_cpus=args.num_cpus)


def _print_result(result: Any) -> None:
    from directsam.evaluation import report

    cache = next(iter(result.caches.values()))
    print(f"sweep {result.sweep_id}: {result.rows[0]['checkpoint']} on {result.rows[0]['dataset']}")
    built = [r for r, c in result.caches.items() if c.built]
    print(
        f"cache: {cache.location} ({'built' if built else 'reused'}, {cache.manifest.get('num_rows')} rows)"
    )
    for key in sorted({(r["resolution"], r["tolerance"]) for r in result.rows}):
        rows = [r for r in result.rows if (r["resolution"], r["tolerance"]) == key]
        print(f"\nresolution {key[0]} px, tolerance {key[1]}\n{report.format_table(rows)}")
    print(f"\nresults: {result.output_dir}")
    if result.summary_run_id:
        print(f"MLflow: {result.tracking_uri} summary run {result.summary_run_id}")


def preflight(cfg: Any, sweep: bool) -> str | None:
    """Every flag of ``evaluate`` / ``sweep`` checked before Ray starts (one line naming the
    flag); returns the tracking URI (None with ``--no-tracking``)."""
    from directsam import preflight as pf

    pf.check_source(cfg.source)
    pf.check_output_dir(cfg.output, "--output")
    pf.check_output_dir(cfg.cache_dir, "--cache-dir")
    if sweep and cfg.storage_path:
        pf.check_output_dir(cfg.storage_path, "--storage-path")
    pf.check_checkpoint(cfg.checkpoint, "--checkpoint")
    return pf.check_tracking(cfg.tracking_uri, cfg.tracking)


def _run(args: argparse.Namespace, sweep: bool) -> int:
    from directsam.evaluation.config import EvalConfig, SweepConfig

    cfg = _load(SweepConfig if sweep else EvalConfig, args, sweep)
    preflight(cfg, sweep)
    _start_ray(args)
    from directsam.evaluation.sweep import run_evaluation, run_sweep

    result = run_sweep(cfg) if sweep else run_evaluation(cfg)
    _print_result(result)
    if result.tracking_warning:
        print(f"directsam {'sweep' if sweep else 'evaluate'}: {result.tracking_warning}",
              file=sys.stderr)  # fmt: skip
    return 0


def register(subparsers: Any) -> None:
    """Add ``evaluate`` and ``sweep`` to the ``directsam`` parser."""
    p = subparsers.add_parser(
        "evaluate", help="score a checkpoint on a validation split over thresholds"
    )
    _add_args(p, sweep=False)
    p.set_defaults(func=lambda a: _run(a, sweep=False))
    p = subparsers.add_parser(
        "sweep", help="Ray Tune threshold (tolerance/resolution) sweep -> MLflow"
    )
    _add_args(p, sweep=True)
    p.set_defaults(func=lambda a: _run(a, sweep=True))


def evaluate_main(argv: Sequence[str] | None = None) -> int:
    """``directsam evaluate`` / ``ray_jobs/evaluate.py``; returns the exit code."""
    return standalone_main("directsam evaluate", lambda p: _add_args(p, sweep=False),
                           lambda a: _run(a, sweep=False), argv)  # fmt: skip


def sweep_main(argv: Sequence[str] | None = None) -> int:
    """``directsam sweep`` / ``ray_jobs/sweep.py``; returns the exit code."""
    return standalone_main("directsam sweep", lambda p: _add_args(p, sweep=True),
                           lambda a: _run(a, sweep=True), argv)  # fmt: skip
