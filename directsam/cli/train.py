"""``directsam pretrain`` (stage 1) and ``directsam self-train`` (stage 3).

    directsam pretrain --config configs/pretrain.yaml --data s3://bucket/sa1b/tars \\
        --storage-path s3://bucket/runs --num-workers 8 --use-gpu
    directsam self-train --config configs/self_train.yaml --data OUT/shards --init CKPT
    python ray_jobs/pretrain.py --config configs/smoke/pretrain.yaml --data SAMPLE

Re-running the same command resumes the run (same run name + storage path). Named flags are
shorthands for config keys (shown in brackets); ``--set key.sub=value`` sets any key.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
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
from directsam.config import ConfigError, add_config_args, config_from_args, dump_yaml
from directsam.training.config import TrainConfig, config_class

# The source flags a training job offers (--data is its --input); the rest are `--set source.*`.
SOURCE_FIELDS = ("type", "input", "dataset", "num_samples", "seed")
SHORTHANDS: dict[str, str] = {
    **source_shorthands(SOURCE_FIELDS, input_flag="--data"),
    "init": "init",
    "max_steps": "optim.max_steps",
    "run_name": "run.run_name",
    "storage_path": "run.storage_path",
    "shared_storage": "run.shared_storage",
    "num_workers": "run.num_workers",
    "use_gpu": "run.use_gpu",
    "tracking_uri": "tracking.uri",
    "experiment": "tracking.experiment",
    "register_model": "tracking.registered_model_name",
}


def add_train_args(p: argparse.ArgumentParser, stage: str) -> None:
    """Flags of a training job; every one defaults to None (= keep the config's value)."""
    default_source = config_class(stage)().source.type
    add_config_args(p)
    g = p.add_argument_group("data")
    add_source_args(
        g, SOURCE_FIELDS, input_flag="--data", notes={"type": f"default {default_source}"}
    )
    t = p.add_argument_group("run")
    t.add_argument("--init", default=None, help="hub id, checkpoint dir or scratch:b0..b5 [init]")
    t.add_argument("--max-steps", type=int, default=None, help="optimizer steps [optim.max_steps]")
    t.add_argument(
        "--run-name",
        default=None,
        help="run name; default experiment + config hash; same name resumes [run.run_name]",
    )
    t.add_argument(
        "--storage-path",
        default=None,
        help="checkpoint storage: directory or s3://... [run.storage_path]",
    )
    t.add_argument(
        "--shared-storage",
        action="store_true",
        default=None,
        help="the local --storage-path is shared by all nodes [run.shared_storage]",
    )
    t.add_argument(
        "--num-workers",
        type=int,
        default=None,
        help="training workers; 0 = Train local mode [run.num_workers]",
    )
    t.add_argument(
        "--use-gpu", action="store_true", default=None, help="one GPU per worker [run.use_gpu]"
    )
    add_address_arg(t)
    k = p.add_argument_group("tracking")
    add_tracking_args(k, {"tracking_uri": "[tracking.uri]", "experiment": "[tracking.experiment]",
                          "no_tracking": "[tracking.enabled]"})  # fmt: skip
    k.add_argument(
        "--register-model",
        default=None,
        metavar="NAME",
        help="log the final checkpoint as an MLflow model and register it as NAME, loadable as "
        "models:/NAME/<version> [tracking.registered_model_name]",
    )
    p.add_argument(
        "--print-config", action="store_true", help="print the resolved config as YAML and exit"
    )
    add_smoke_test_arg(p, help="generate a sample in a temp dir and run the smoke preset on it")


def build_config(args: argparse.Namespace, stage: str) -> TrainConfig:
    """Config of a training job from parsed flags (YAML < named flags < ``--set``)."""
    from functools import partial

    from directsam.data.sources.registry import fill_from_registry

    cls = config_class(stage)
    fill = partial(fill_from_registry, default_registry=cls().source.registry)
    cfg = config_from_args(cls, args, SHORTHANDS, prepare=fill)
    if cfg.stage != stage:
        raise ConfigError(f"--config: the file is a {cfg.stage} config; use it with that job")
    if getattr(args, "no_tracking", False):
        cfg.tracking.enabled = False
    if not cfg.source.input:
        raise ConfigError("--data: no training data given (a path, URI or --dataset NAME)")
    return cfg


def run_job(cfg: TrainConfig, address: str | None = None) -> dict[str, Any]:
    """Connect to Ray, train (or resume), and return a summary of the result."""
    from directsam.raycluster import init_ray
    from directsam.training.trainer import run_training

    init_ray(address)
    result = run_training(cfg)
    return {
        "run_name": result.run_name,
        "checkpoint": result.checkpoint,
        "storage_path": result.storage_path,
        "mlflow_run_id": result.mlflow_run_id,
        "metrics": result.metrics,
        "tracking_warning": result.tracking_warning,
    }


def preflight(cfg: TrainConfig) -> str | None:
    """Every flag of a training job checked before Ray starts (one line naming the flag);
    returns the tracking URI (None with ``--no-tracking``)."""
    from directsam import preflight as pf

    pf.check_source(cfg.source, input_flag="--data", annotations_flag="--set source.annotations",
                    labels_flag="--set source.labels")  # fmt: skip
    pf.check_output_dir(cfg.run.storage_path, "--storage-path")
    pf.check_checkpoint(cfg.init, "--init", cfg.allow_pickle)
    return pf.check_tracking(cfg.tracking.uri, cfg.tracking.enabled)


def _smoke_labels(sample: Path, output: Path, address: str | None) -> Path:
    """Pseudo-label ``sample`` into ``output`` with the label job's smoke preset (the data of
    a self-train smoke test), through the label command itself."""
    from directsam.cli import smoke
    from directsam.cli.label import main as label_main

    argv = ["--config", smoke.smoke_preset("pseudo_label"), "--input", str(sample),
            "--output", str(output), "--address", address or "local"]  # fmt: skip
    code = label_main(argv)
    if code != 0:
        raise ConfigError(f"--smoke-test: labeling the sample failed (exit {code})")
    return output


def prepare_smoke_test(args: argparse.Namespace, stage: str, workdir: Path) -> None:
    """Fill unset flags for ``--smoke-test``: sample data (labeled for stage 3), the smoke
    preset, storage and MLflow under ``workdir``."""
    from directsam.cli import smoke

    data = smoke.smoke_sample(workdir, num_images=8)
    if stage == "self_train" and args.data is None:
        data = _smoke_labels(data, workdir / "labels", args.address)
    args.config = args.config or smoke.smoke_preset(stage)
    args.data = args.data or str(data)
    args.storage_path = args.storage_path or str(workdir / "runs")
    args.tracking_uri = args.tracking_uri or smoke.smoke_tracking_uri(workdir)


def _main(args: argparse.Namespace, stage: str) -> int:
    if getattr(args, "smoke_test", False):
        with tempfile.TemporaryDirectory(prefix=f"directsam-{stage}-smoke-") as tmp:
            prepare_smoke_test(args, stage, Path(tmp))
            args.smoke_test = False
            return _main(args, stage)
    cfg = build_config(args, stage)
    if args.print_config:
        print(dump_yaml(cfg), end="")
        return 0
    preflight(cfg)
    try:
        summary = run_job(cfg, args.address)
    except ValueError as err:  # listing / data problems name their flag
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(str(err)) from err
    warning = summary.pop("tracking_warning")
    print(json.dumps(summary, default=str))
    if warning:
        print(f"directsam {stage.replace('_', '-')}: {warning}", file=sys.stderr)
    return 0


def _parser(prog: str, stage: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_train_args(p, stage)
    return p


def _standalone(prog: str, stage: str, argv: Sequence[str] | None) -> int:
    return standalone_main(prog, lambda p: add_train_args(p, stage), lambda a: _main(a, stage),
                           argv, description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip


def pretrain_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ray_jobs/pretrain.py`` (same flags as ``directsam pretrain``)."""
    return _standalone("pretrain", "pretrain", argv)


def self_train_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ray_jobs/self_train.py`` (same flags as ``directsam self-train``)."""
    return _standalone("self_train", "self_train", argv)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``pretrain`` and ``self-train`` subcommands."""
    for name, stage, text in (
        ("pretrain", "pretrain", "stage 1: train the boundary model on SA-1B"),
        ("self-train", "self_train", "stage 3: train on merged pseudo + human labels"),
    ):
        p = subparsers.add_parser(name, help=text, description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
        add_train_args(p, stage)
        p.set_defaults(func=lambda a, s=stage: _main(a, s))
