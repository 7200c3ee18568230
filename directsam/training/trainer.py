"""Driver side of a training run: resolve the config, build the ``TorchTrainer``, fit, track.

``run_training(cfg)`` is what ``directsam pretrain`` / ``self-train`` call after ``init_ray``.
The same run name and storage path resume (Ray Train V2 restores the latest checkpoint of
``RunConfig(storage_path, name)``); ``FailureConfig`` restarts a failed worker group from it.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from directsam.config import ConfigError, from_dict, to_dict
from directsam.training.config import TrainConfig
from directsam.training.hooks import StepHook, check_hooks
from directsam.training.loop import Runtime, train_loop_per_worker

if TYPE_CHECKING:
    import ray.data
    from ray.train.torch import TorchTrainer


@dataclass
class TrainingResult:
    """What a finished ``fit()`` produced."""

    run_name: str
    checkpoint: str | None
    """The final checkpoint (a loadable HF directory, or an ``s3://`` URI)."""
    metrics: dict[str, Any]
    """The last metrics reported by rank 0 (loss, lr, images_per_s, val_*, step, ...)."""
    mlflow_run_id: str | None
    storage_path: str
    tracking_warning: str = ""
    """Set when MLflow records were spooled (the server was unreachable): where, and how to
    send them. The checkpoints are complete either way."""


def _is_remote(path: str) -> bool:
    from directsam.raycluster import is_remote_uri

    return is_remote_uri(path)


def _abs(path: str | None) -> str | None:
    if path is None or path == "" or _is_remote(path):
        return path
    return str(Path(path).expanduser().resolve())


def resolve_config(cfg: TrainConfig) -> TrainConfig:
    """A copy with absolute local paths, a fixed run name and a resolved tracking URI.

    Workers run in another working directory (Ray Train changes it), so relative paths are
    resolved here, once, on the driver; the run name is hashed from the absolute data path.
    """
    from directsam.model.spec import is_local_path
    from directsam.tracking import resolve_tracking_uri

    cfg = from_dict(type(cfg), to_dict(cfg))
    src = cfg.source
    src.input = _abs(src.input) or ""
    src.annotations, src.labels = _abs(src.annotations), _abs(src.labels)
    if is_local_path(cfg.init):
        cfg.init = _abs(cfg.init) or cfg.init
    cfg.run.storage_path = _abs(cfg.run.storage_path) or cfg.run.storage_path
    cfg.run.run_name = cfg.run_name()
    if cfg.tracking.enabled:
        cfg.tracking.uri = resolve_tracking_uri(cfg.tracking.uri)
    return cfg


def check_ready(cfg: TrainConfig) -> None:
    """Refuse settings that would fail late (after data listing or on a remote worker).

    Raises:
        ConfigError: Train V1 forced on, local mode with remote storage, or a local storage
            path on a multi-host cluster without ``--shared-storage``.
    """
    if os.environ.get("RAY_TRAIN_V2_ENABLED", "1") == "0":
        raise ConfigError(
            "RAY_TRAIN_V2_ENABLED=0: directsam training needs Ray Train V2; unset the variable"
        )
    if cfg.run.num_workers == 0 and _is_remote(cfg.run.storage_path):
        raise ConfigError(
            "--num-workers 0 (Train local mode) writes checkpoints itself and needs a local "
            f"--storage-path, got {cfg.run.storage_path!r}"
        )
    import ray

    if cfg.run.num_workers > 0 and ray.is_initialized():
        from directsam.raycluster import check_storage_path

        check_storage_path(cfg.run.storage_path, cfg.run.shared_storage)


def plan_steps(cfg: TrainConfig, num_images: int) -> tuple[int, int]:
    """(total optimizer steps, steps per epoch) for ``num_images`` training images.

    Raises:
        ConfigError: fewer images than one optimizer step consumes.
    """
    o = cfg.optim
    per_step = o.batch_size * o.grad_accum * max(1, cfg.run.num_workers)
    steps_per_epoch = num_images // per_step
    if steps_per_epoch == 0:
        raise ConfigError(
            f"--data: {num_images} training images but one optimizer step needs {per_step} "
            f"(batch_size {o.batch_size} x grad_accum {o.grad_accum} x workers "
            f"{max(1, cfg.run.num_workers)}); lower them or add data"
        )
    total = o.max_steps if o.max_steps is not None else o.epochs * steps_per_epoch
    return total, steps_per_epoch


def build_trainer(
    cfg: TrainConfig,
    datasets: dict[str, ray.data.Dataset],
    runtime: Runtime,
    step_hooks: Sequence[StepHook] = (),
) -> TorchTrainer:
    """The ``TorchTrainer`` of a resolved config (see :func:`resolve_config`); ``step_hooks``
    travel to the workers in ``train_loop_config`` (``directsam.training.hooks``)."""
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer

    r = cfg.run
    resources: dict[str, float] = {"CPU": r.cpus_per_worker}
    if r.use_gpu:
        resources["GPU"] = 1
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "cfg": to_dict(cfg),
            "runtime": dataclasses.asdict(runtime),
            "step_hooks": check_hooks(step_hooks),
        },
        # gloo on CPU; None lets Ray pick nccl when GPUs are requested.
        torch_config=TorchConfig(backend=None if r.use_gpu else "gloo"),
        scaling_config=ray.train.ScalingConfig(
            num_workers=r.num_workers,
            use_gpu=r.use_gpu,
            resources_per_worker=resources if r.num_workers > 0 else None,
        ),
        run_config=ray.train.RunConfig(
            name=cfg.run_name(),
            storage_path=r.storage_path,
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=cfg.checkpoint.num_to_keep),
            failure_config=ray.train.FailureConfig(max_failures=r.max_failures),
        ),
        datasets=datasets,
        # Only the training split is sharded; rank 0 validates on the whole held-out split.
        dataset_config=ray.train.DataConfig(
            datasets_to_split=["train"], execution_options=_ingest_options(cfg)
        ),
    )


def _ingest_options(cfg: TrainConfig) -> Any:
    """Train's default ingest options, in the source's order when ``data.preserve_order``."""
    import ray.train

    options = ray.train.DataConfig.default_ingest_options()
    options.preserve_order = options.preserve_order or cfg.data.preserve_order
    return options


def run_training(
    cfg: TrainConfig,
    num_images: int | None = None,
    datasets: dict[str, ray.data.Dataset] | None = None,
    step_hooks: Sequence[StepHook] = (),
) -> TrainingResult:
    """Train (or resume) the run described by ``cfg``; Ray must be initialised.

    Args:
        cfg: the job config (relative paths are resolved against the current directory).
        num_images: training images, when already known (default: list the source).
        datasets: ``{"train": ..., "val": ...}`` to use instead of building them from
            ``cfg.data`` (tests, benchmarks).
        step_hooks: callables every worker calls after each optimizer step with a
            ``directsam.training.hooks.StepEvent`` (tests: fault injection, observation).

    Returns:
        :class:`TrainingResult` with the final checkpoint and last metrics.
    """
    from ray.train import Checkpoint

    from directsam.tracking import spool_warning
    from directsam.tracking.spool import count_records
    from directsam.training.data import build_datasets, count_train_images
    from directsam.training.state import latest_local_checkpoint
    from directsam.training.track import checkpoint_uri, finish_run, open_tracker, spool_dir

    cfg = resolve_config(cfg)
    check_ready(cfg)
    step_hooks = check_hooks(step_hooks)
    if datasets is None:
        train, val = build_datasets(cfg)
        datasets = {"train": train} if val is None else {"train": train, "val": val}
    if num_images is None:
        num_images = count_train_images(cfg)
    total, per_epoch = plan_steps(cfg, num_images)
    local = cfg.run.num_workers == 0
    run_dir = os.path.join(cfg.run.storage_path, cfg.run_name())
    runtime = Runtime(total, per_epoch, "val" in datasets, local, run_dir if local else None)

    started = time.time()
    tracker = open_tracker(cfg)
    runtime.mlflow_run_id = tracker.run_id  # rank 0 appends to the driver's run
    trainer = build_trainer(cfg, datasets, runtime, step_hooks)
    try:
        result = trainer.fit()
    except BaseException:
        tracker.end("FAILED")  # never raises: the training's own error is the one that counts
        raise
    checkpoint = result.checkpoint
    if local:
        latest = latest_local_checkpoint(run_dir)
        checkpoint = Checkpoint.from_directory(str(latest)) if latest is not None else None
    metrics = dict(result.metrics or {})
    t = cfg.tracking
    finish_run(
        tracker,
        checkpoint,
        t.log_checkpoint_artifact,
        metrics,
        log_model=t.log_model,
        registered_model_name=t.registered_model_name,
    )
    warning = ""
    if cfg.tracking.enabled:  # the driver's and the workers' spooled records of this run
        spool = spool_dir(cfg)
        spooled = count_records(spool, since=started) if spool.exists() else 0
        reason = tracker.client.reason() if hasattr(tracker, "client") else None
        warning = spool_warning(spool, cfg.tracking.uri, reason, spooled)
    return TrainingResult(
        run_name=cfg.run_name(),
        checkpoint=checkpoint_uri(checkpoint) if checkpoint is not None else None,
        metrics=metrics,
        mlflow_run_id=tracker.run_id,
        storage_path=cfg.run.storage_path,
        tracking_warning=warning,
    )
