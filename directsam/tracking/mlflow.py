"""MLflow helpers: tracking-URI resolution, experiments with explicit artifact roots, and a
resume-safe run handle (one MLflow run per ``directsam.run_name`` tag).

MLflow 3.13+ refuses the plain ``./mlruns`` file store, so the local default is a sqlite file
``mlflow.db`` in the working directory with artifacts under ``mlartifacts/``. Several writers
(a cluster, parallel jobs) should use an ``mlflow server`` URI instead of sqlite.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

RUN_NAME_TAG = "directsam.run_name"
_MAX_PARAM_LEN = 6000  # MLflow 3 limit on a param value


class TrackingError(RuntimeError):
    """The tracking backend cannot be used (unreachable server, bad URI)."""


def resolve_tracking_uri(flag: str | None = None, workdir: str | Path | None = None) -> str:
    """``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else ``sqlite:///<workdir>/mlflow.db``."""
    if flag:
        uri = flag
    elif os.environ.get("MLFLOW_TRACKING_URI"):
        uri = os.environ["MLFLOW_TRACKING_URI"]
    else:
        base = Path(workdir or os.getcwd()).resolve()
        uri = f"sqlite:///{base / 'mlflow.db'}"
    if uri.startswith("file:") or "://" not in uri:
        raise TrackingError(
            f"--tracking-uri {uri!r}: the MLflow file store is refused by MLflow 3.13+; "
            "use sqlite:///path/mlflow.db or http://host:5000"
        )
    return uri


def default_artifact_location(uri: str) -> str | None:
    """Artifact root beside a sqlite store (``mlartifacts/``); None lets a server decide."""
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///") :])
        return (db.parent / "mlartifacts").resolve().as_uri()
    return None


def check_reachable(uri: str, timeout_s: float = 5.0) -> None:
    """Fail fast, with a message saying what to do, when an HTTP tracking server is down."""
    if not uri.startswith(("http://", "https://")):
        return
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 (user URI)
            if resp.status >= 400:
                raise TrackingError(f"MLflow server {uri} answered HTTP {resp.status} on /health")
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        raise TrackingError(
            f"--tracking-uri {uri}: MLflow tracking server unreachable ({err}). Start it with "
            "`mlflow server --host 127.0.0.1 --port 5000 --backend-store-uri sqlite:///mlflow.db` "
            "or pass another --tracking-uri"
        ) from err


def ensure_experiment(name: str, uri: str, artifact_location: str | None = None) -> str:
    """Return the id of experiment ``name``, creating it with an explicit artifact location."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = artifact_location or default_artifact_location(uri)
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:
        # Another process created it between our lookup and create.
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


class NoopTracker:
    """Same surface as :class:`MlflowTracker`; does nothing (non-zero ranks, tracking off)."""

    run_id: str | None = None
    experiment_id: str | None = None
    resumed = False

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        pass

    def log_params(self, params: dict[str, Any]) -> None:
        pass

    def set_tags(self, tags: dict[str, Any]) -> None:
        pass

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        pass

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        pass

    def end(self, status: str = "FINISHED") -> None:
        pass


class MlflowTracker(NoopTracker):
    """One MLflow run, found again by its ``directsam.run_name`` tag when it already exists.

    Params are logged only when the run is created (MLflow refuses changed params), so a
    resubmitted job continues the same run and appends metrics at later steps.
    """

    def __init__(
        self,
        uri: str,
        experiment: str,
        run_name: str,
        params: dict[str, Any] | None = None,
        tags: dict[str, Any] | None = None,
        resume: bool = True,
    ):
        from mlflow.tracking import MlflowClient

        check_reachable(uri)
        self.uri = uri
        self.client = MlflowClient(tracking_uri=uri)
        self.experiment_id = ensure_experiment(experiment, uri)
        self.run_name = run_name
        existing = None
        if resume:
            found = self.client.search_runs(
                [self.experiment_id],
                filter_string=f"tags.`{RUN_NAME_TAG}` = '{run_name}'",
                max_results=1,
            )
            existing = found[0] if found else None
        all_tags = {RUN_NAME_TAG: run_name, **{k: str(v) for k, v in (tags or {}).items()}}
        if existing is not None:
            self.run_id = existing.info.run_id
            self.resumed = True
            self.client.update_run(self.run_id, status="RUNNING")
            self.set_tags(all_tags)
        else:
            run = self.client.create_run(self.experiment_id, run_name=run_name, tags=all_tags)
            self.run_id = run.info.run_id
            self.resumed = False
            if params:
                self.log_params(params)

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:_MAX_PARAM_LEN]) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow batch limit
            self.client.log_batch(self.run_id, params=items[i : i + 100])

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [
            Metric(k, float(v), now, int(step or 0))
            for k, v in metrics.items()
            if v is not None and v == v  # drop None and NaN
        ]
        if items:
            self.client.log_batch(self.run_id, metrics=items)

    def set_tags(self, tags: dict[str, Any]) -> None:
        for k, v in tags.items():
            self.client.set_tag(self.run_id, k, str(v))

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        p = Path(path)
        if p.is_dir():
            self.client.log_artifacts(self.run_id, str(p), artifact_path)
        else:
            self.client.log_artifact(self.run_id, str(p), artifact_path)

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        self.client.log_figure(self.run_id, figure, artifact_file)

    def end(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status=status)


def get_tracker(
    enabled: bool,
    uri: str | None = None,
    experiment: str = "",
    run_name: str = "",
    params: dict[str, Any] | None = None,
    tags: dict[str, Any] | None = None,
) -> NoopTracker:
    """An :class:`MlflowTracker` when ``enabled`` (driver / rank 0), else a :class:`NoopTracker`."""
    if not enabled:
        return NoopTracker()
    return MlflowTracker(resolve_tracking_uri(uri), experiment, run_name, params, tags)
