"""MLflow for training runs (Train V2 has no MLflow callback): one run per training run.

A training is identified by its storage path and run name: the run carries the tag
``directsam.run_key`` = hash of both, so resuming the same storage path reopens the same MLflow
run while a training anywhere else (another ``--storage-path``, another run name) gets a new
one, and a FINISHED run is never reopened by another training. The driver opens the run before
``fit()`` (params are logged exactly once, at creation) and hands its id to the workers; rank 0
of every worker group, including groups restarted after a failure, appends metrics to it; the
driver closes it with the final checkpoint. Use an ``http://`` tracking server when workers
run on other hosts.

Tracking is best effort (:mod:`directsam.tracking.client`): when the server is gone, the
driver's and rank 0's records go to ``<storage>/<run name>/_mlflow_spool/`` and training goes
on; ``directsam tracking replay`` sends them later.
"""

from __future__ import annotations

import hashlib
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
        "directsam.dataset": cfg.source.dataset or os.path.basename(cfg.source.input.rstrip("/")),
        "directsam.init": cfg.init,
        "directsam.storage_path": cfg.run.storage_path,
    }
    for key, value in lineage().items():
        if value is not None:
            tags[f"directsam.lineage.{key}"] = value
    return tags


def run_key(cfg: TrainConfig) -> str:
    """What identifies a training for MLflow: a hash of its storage path and run name."""
    text = f"{cfg.run.storage_path.rstrip('/')}\n{cfg.run_name()}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def spool_dir(cfg: TrainConfig) -> Path:
    """Where the run's unsent MLflow records go: ``<storage>/<run name>/_mlflow_spool`` (a
    local folder under ``$DIRECTSAM_CACHE`` when the storage path is remote)."""
    from directsam.tracking.spool import spool_dir_beside

    run_dir = os.path.join(cfg.run.storage_path, cfg.run_name())
    return spool_dir_beside(run_dir, cfg.run_name())


def open_tracker(
    cfg: TrainConfig, enabled: bool = True, *, run_id: str | None = None, role: str = "driver"
) -> NoopTracker:
    """The run's tracker: :class:`MlflowTracker` when tracking is on and ``enabled`` (driver /
    rank 0), else a no-op. The run tagged with :func:`run_key` is continued when it exists;
    with ``run_id`` (a worker) the tracker attaches to that run without any lookup.
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
        key=run_key(cfg),
        run_id=run_id,
        spool=spool_dir(cfg),
        role=role,
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
        client = getattr(tracker, "client", None)  # None for a NoopTracker
        if client is not None and (log_artifact or log_model):
            with checkpoint.as_directory() as directory:
                if log_artifact:
                    log_final_model(tracker, directory)
                if log_model:
                    client.log_model(
                        tracker.ref, directory, registered_model_name, log_checkpoint_to_run
                    )
    if metrics:
        step = int(metrics.get("step", 0))
        wanted = {k: v for k, v in metrics.items() if k.startswith("steady_")}
        tracker.log_metrics(wanted, step)
    tracker.end("FINISHED")


def log_checkpoint_to_run(directory: str, name: str | None, run_id: str, uri: str) -> None:
    """Log a checkpoint directory as the MLflow model of run ``run_id`` (registered as ``name``
    when given); also what ``directsam tracking replay`` uses for spooled models."""
    from directsam.delivery.registry import log_checkpoint_model

    log_checkpoint_model(directory, name, run_id=run_id, tracking_uri=uri)
