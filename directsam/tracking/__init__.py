"""Experiment tracking: MLflow on the driver / rank 0, a no-op elsewhere, plus lineage records.

Writes are best effort (:mod:`directsam.tracking.client`): bounded in time, spooled to disk when
the server is gone (:mod:`directsam.tracking.spool`), sent later by
``directsam tracking replay`` (:mod:`directsam.tracking.replay`).
"""

from directsam.tracking.client import RunRef, TrackingClient, ensure_experiment
from directsam.tracking.lineage import lineage
from directsam.tracking.mlflow import (
    MlflowTracker,
    NoopTracker,
    TrackingError,
    check_reachable,
    check_store,
    get_tracker,
    resolve_tracking_uri,
    spool_warning,
)

__all__ = [
    "MlflowTracker",
    "NoopTracker",
    "RunRef",
    "TrackingClient",
    "TrackingError",
    "check_reachable",
    "check_store",
    "ensure_experiment",
    "get_tracker",
    "lineage",
    "resolve_tracking_uri",
    "spool_warning",
]
