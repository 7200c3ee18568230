"""MLflow for training runs (Train V2 has no MLflow callback): one run per training run.

The driver opens the run before ``fit()`` (so a bad tracking URI fails before any worker
starts, and params are logged exactly once, at creation); rank 0 of every worker group,
including groups restarted after a failure, finds the same run again by its
``directsam.run_name`` tag and appends metrics; the driver closes it with the final
checkpoint. Use an ``http://`` tracking server when workers run on other hosts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from directsam.config import flatten

if TYPE_CHECKING:
    from directsam.tracking import NoopTracker
    from directsam.training.config import TrainConfig

CHECKPOINT_TAG = "directsam.checkpoint"


def tracking_params(cfg: TrainConfig) -> dict[str, Any]:
    """The flattened config (MLflow rejects nested params), plus the resolved run name."""
    params = flatten(cfg)
    params["run_name"] = cfg.run_name()
    return params


def tracking_tags(cfg: TrainConfig) -> dict[str, Any]:
    """Tags that find and describe the run: stage, dataset, storage, lineage."""
    from directsam.tracking import lineage

    tags: dict[str, Any] = {
        "directsam.stage": cfg.stage,
        "directsam.dataset": cfg.data.dataset or os.path.basename(cfg.data.input.rstrip("/")),
        "directsam.init": cfg.init,
        "directsam.storage_path": cfg.run.storage_path,
    }
    for key, value in lineage().items():
        if value is not None:
            tags[f"directsam.lineage.{key}"] = value
    return tags


def open_tracker(cfg: TrainConfig, enabled: bool = True) -> NoopTracker:
    """The run's tracker: :class:`MlflowTracker` when tracking is on and ``enabled`` (driver /
    rank 0), else a no-op. An existing run with the same run name is continued.
    """
    from directsam.tracking import MlflowTracker, NoopTracker, resolve_tracking_uri

    if not (enabled and cfg.tracking.enabled):
        return NoopTracker()
    return MlflowTracker(
        resolve_tracking_uri(cfg.tracking.uri),
        cfg.experiment(),
        cfg.run_name(),
        params=tracking_params(cfg),
        tags=tracking_tags(cfg),
    )


def log_final_model(tracker: NoopTracker, checkpoint_dir: str | os.PathLike[str]) -> None:
    """Log the final model of a run: the checkpoint's model files as artifact ``checkpoint/``.

    The HF files and ``directsam.json`` are logged (a loadable checkpoint); the optimizer state
    (``training_state.pt``, twice the weights) stays in the run's storage only.

    With ``tracking.log_model`` the run also gets an MLflow pyfunc model of the checkpoint
    (``directsam.delivery.registry.log_checkpoint_model``, in :func:`finish_run`).
    """
    from directsam.training.state import STATE_FILE

    for path in sorted(Path(checkpoint_dir).iterdir()):
        if path.is_file() and path.name != STATE_FILE:
            tracker.log_artifact(path, "checkpoint")


def checkpoint_uri(checkpoint: Any) -> str:
    """A ``ray.train.Checkpoint``'s location as a path or ``s3://...`` URI."""
    filesystem = getattr(checkpoint, "filesystem", None)
    scheme = getattr(filesystem, "type_name", "local")
    if scheme in ("local", None):
        return str(checkpoint.path)
    return f"{scheme}://{str(checkpoint.path).lstrip('/')}"


def finish_run(
    tracker: NoopTracker,
    checkpoint: Any | None,
    log_artifact: bool = True,
    metrics: dict[str, float] | None = None,
    log_model: bool = False,
    registered_model_name: str | None = None,
) -> None:
    """Tag the final checkpoint path, log the model, and mark the run FINISHED.

    Args:
        tracker: the driver's tracker for the run.
        checkpoint: the final ``ray.train.Checkpoint`` (local or remote storage), or None.
        log_artifact: copy the checkpoint directory into MLflow (``log_final_model``).
        metrics: final metrics to record once more (e.g. ``steady_images_per_s``).
        log_model: also log the checkpoint as an MLflow pyfunc model in the same run.
        registered_model_name: register that model under this name (implies ``log_model``).
    """
    log_model = log_model or bool(registered_model_name)
    if checkpoint is not None:
        tracker.set_tags({CHECKPOINT_TAG: checkpoint_uri(checkpoint)})
        if log_artifact or (log_model and tracker.run_id):
            with checkpoint.as_directory() as directory:
                if log_artifact:
                    log_final_model(tracker, directory)
                if log_model and tracker.run_id:
                    from directsam.delivery.registry import log_checkpoint_model

                    log_checkpoint_model(
                        directory,
                        registered_model_name,
                        run_id=tracker.run_id,
                        tracking_uri=getattr(tracker, "uri", None),
                    )
    if metrics:
        step = int(metrics.get("step", 0))
        wanted = {k: v for k, v in metrics.items() if k.startswith("steady_")}
        tracker.log_metrics(wanted, step)
    tracker.end("FINISHED")
