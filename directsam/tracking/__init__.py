"""Experiment tracking: MLflow on the driver / rank 0, a no-op elsewhere, plus lineage records."""

from directsam.tracking.lineage import lineage
from directsam.tracking.mlflow import (
    MlflowTracker,
    NoopTracker,
    TrackingError,
    check_reachable,
    ensure_experiment,
    get_tracker,
    resolve_tracking_uri,
)

__all__ = [
    "MlflowTracker",
    "NoopTracker",
    "TrackingError",
    "check_reachable",
    "ensure_experiment",
    "get_tracker",
    "lineage",
    "resolve_tracking_uri",
]
