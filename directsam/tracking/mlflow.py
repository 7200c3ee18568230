"""MLflow helpers: tracking-URI resolution and checks, experiments with explicit artifact roots,
and the run handle jobs use (one MLflow run per ``directsam.run_key`` tag).

MLflow 3.13+ refuses the plain ``./mlruns`` file store, so the local default is a sqlite file
``mlflow.db`` in the working directory with artifacts under ``mlartifacts/``. Several writers
(a cluster, parallel jobs) should use an ``mlflow server`` URI instead of sqlite.

Every write goes through :class:`directsam.tracking.client.TrackingClient`: bounded in time,
spooled to disk when the server is gone, never raising into the job.
"""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from directsam.tracking.client import (
    HTTP_TIMEOUT_S,
    RETRY_BUDGET_S,
    RunRef,
    TrackingClient,
)
from directsam.tracking.client import RUN_KEY_TAG as RUN_KEY_TAG  # re-exported
from directsam.tracking.client import RUN_NAME_TAG as RUN_NAME_TAG  # re-exported

# SQLAlchemy dialects MLflow stores accept, plus servers and Databricks.
_SCHEMES = ("http", "https", "sqlite", "postgresql", "mysql", "mssql", "databricks")
_HOST_PORT = re.compile(r"^[A-Za-z0-9_.-]+:\d+(/.*)?$")
START_ADVICE = (
    "Start it with `mlflow server --host 127.0.0.1 --port 5000 --backend-store-uri "
    "sqlite:///mlflow.db` or pass another --tracking-uri"
)


class TrackingError(RuntimeError):
    """The tracking backend cannot be used (unreachable server, bad URI)."""


def resolve_tracking_uri(flag: str | None = None, workdir: str | Path | None = None) -> str:
    """``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else ``sqlite:///<workdir>/mlflow.db``.

    Raises:
        TrackingError: a URI MLflow would refuse or misread: ``host:port`` without ``http://``,
            the file store (``./mlruns``, ``file:``), or an unknown scheme.
    """
    if flag:
        uri, where = flag, f"--tracking-uri {flag}"
    elif os.environ.get("MLFLOW_TRACKING_URI"):
        uri = os.environ["MLFLOW_TRACKING_URI"]
        where = f"--tracking-uri (not given; MLFLOW_TRACKING_URI {uri})"
    else:
        base = Path(workdir or os.getcwd()).resolve()
        return f"sqlite:///{base / 'mlflow.db'}"
    if _HOST_PORT.match(uri):
        raise TrackingError(f"{where}: missing http:// (did you mean http://{uri}?)")
    scheme = uri.split("://", 1)[0].split("+", 1)[0].lower() if "://" in uri else ""
    if uri.startswith("file:") or not scheme:
        raise TrackingError(
            f"{where}: the MLflow file store is refused by MLflow 3.13+; "
            "use sqlite:///path/mlflow.db or http://host:5000"
        )
    if scheme not in _SCHEMES:
        raise TrackingError(
            f"{where}: unsupported scheme {scheme}://; use http(s)://host:port or "
            "sqlite:///path/mlflow.db"
        )
    return uri


def check_reachable(uri: str, timeout_s: float = 2.0, label: str | None = None) -> None:
    """Fail fast, with a message saying what to do, when an HTTP tracking server is down.

    Raises:
        TrackingError: no answer within ``timeout_s``, or ``/health`` did not answer 200.
    """
    if not uri.startswith(("http://", "https://")):
        return
    url = uri.rstrip("/") + "/health"
    where = label or f"--tracking-uri {uri}"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 (user URI)
            status = resp.status
    except urllib.error.HTTPError as err:
        raise TrackingError(
            f"{where}: answered HTTP {err.code} on /health; is it an MLflow tracking server?"
        ) from None
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        reason = getattr(err, "reason", err)
        raise TrackingError(
            f"{where}: MLflow tracking server unreachable ({reason}). {START_ADVICE}"
        ) from None
    if status >= 400:
        raise TrackingError(f"{where}: answered HTTP {status} on /health")


def check_store(uri: str, *, must_exist: bool = False, label: str | None = None) -> None:
    """Check a sqlite store's path without creating it; ``must_exist`` for read-only commands.

    Raises:
        TrackingError: a missing store (``must_exist``), a folder where the file should be, or
            a location that cannot be written.
    """
    if not uri.startswith("sqlite:///"):
        return
    where = label or f"--tracking-uri {uri}"
    db = Path(uri[len("sqlite:///") :]).expanduser()
    if db.is_dir():
        raise TrackingError(f"{where}: {db} is a folder; name the sqlite file (…/mlflow.db)")
    if db.exists():
        if not must_exist and not os.access(db, os.W_OK):
            raise TrackingError(f"{where}: {db} is not writable")
        return
    if must_exist:
        raise TrackingError(f"{where}: no MLflow store at {db}")
    parent = db.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise TrackingError(f"{where}: cannot create {db} ({parent} is not a writable folder)")


def spool_warning(
    spool: str | os.PathLike[str], uri: str | None, reason: str | None = None, count: int = 0
) -> str:
    """The one warning a job prints when ``count`` tracking records went to the spool folder
    ``spool`` ("" when ``count`` is 0)."""
    if not count:
        return ""
    why = f" ({reason})" if reason else ""
    return (
        f"warning: MLflow at {uri} did not take {count} tracking records{why}; they are in "
        f"{spool}, and the job's own results are complete. Send them later with: "
        f"directsam tracking replay {spool}"
    )


class NoopTracker:
    """Same surface as :class:`MlflowTracker`; does nothing (non-zero ranks, tracking off)."""

    run_id: str | None = None
    experiment_id: str | None = None
    resumed = False
    uri: str | None = None
    offline: str | None = None
    spool_path: Path | None = None
    spooled = 0

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        pass

    def log_params(self, params: dict[str, Any]) -> None:
        pass

    def set_tags(self, tags: dict[str, Any]) -> None:
        pass

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        pass

    def end(self, status: str = "FINISHED") -> None:
        pass

    def warning(self) -> str:
        """The spool warning to print at the end of the job ("" when nothing was spooled)."""
        return ""


class MlflowTracker(NoopTracker):
    """One MLflow run, found again by its ``directsam.run_key`` tag when it already exists.

    Best effort: a server that goes away sends every later record to the spool, and no method
    raises. Params are logged only when the run is created (MLflow refuses changed params), so
    a resubmitted job continues the same run and appends metrics at later steps.

    Args:
        uri: resolved tracking URI.
        experiment: MLflow experiment name.
        run_name: the run's display name (also the key when ``key`` is None).
        params, tags: logged / set when the run is created (tags also when reopened).
        resume: reopen an existing run with the same key (else always a new run).
        key: what identifies the run (``directsam.run_key``); default ``run_name``.
        run_id: attach to this known run (a training worker): nothing is searched or created.
        spool: spool folder for records the server does not take.
        role: spool file name part (``driver``, ``rank0`` ...).
    """

    def __init__(
        self,
        uri: str,
        experiment: str,
        run_name: str,
        params: dict[str, Any] | None = None,
        tags: dict[str, Any] | None = None,
        resume: bool = True,
        *,
        key: str | None = None,
        run_id: str | None = None,
        spool: str | os.PathLike[str] | None = None,
        role: str = "driver",
        timeout_s: float = HTTP_TIMEOUT_S,
        retry_budget_s: float = RETRY_BUDGET_S,
    ):
        self.uri = uri
        self.run_name = run_name
        self.client = TrackingClient(
            uri, spool, timeout_s=timeout_s, retry_budget_s=retry_budget_s, role=role
        )
        self.ref = RunRef(experiment, key or run_name, run_id)
        if run_id is None:
            self.ref, self.resumed = self.client.open_run(
                experiment, self.ref.key, run_name, params, tags, reopen=resume
            )

    @property
    def run_id(self) -> str | None:  # type: ignore[override]
        return self.ref.run_id

    @property
    def experiment_id(self) -> str | None:  # type: ignore[override]
        return self.client._experiments.get(self.ref.experiment)

    @property
    def offline(self) -> str | None:  # type: ignore[override]
        return self.client.offline

    @property
    def spool_path(self) -> Path:  # type: ignore[override]
        return self.client.spool_path

    @property
    def spooled(self) -> int:  # type: ignore[override]
        return self.client.spooled

    def log_params(self, params: dict[str, Any]) -> None:
        self.client.log_params(self.ref, params)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.client.log_metrics(self.ref, metrics, int(step or 0))

    def set_tags(self, tags: dict[str, Any]) -> None:
        self.client.set_tags(self.ref, tags)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.ref, path, artifact_path)

    def end(self, status: str = "FINISHED") -> None:
        self.client.end_run(self.ref, status)

    def warning(self) -> str:
        return spool_warning(self.spool_path, self.uri, self.client.reason(), self.spooled)


def get_tracker(
    enabled: bool,
    uri: str | None = None,
    experiment: str = "",
    run_name: str = "",
    params: dict[str, Any] | None = None,
    tags: dict[str, Any] | None = None,
    spool: str | os.PathLike[str] | None = None,
) -> NoopTracker:
    """An :class:`MlflowTracker` when ``enabled`` (driver / rank 0), else a :class:`NoopTracker`."""
    if not enabled:
        return NoopTracker()
    return MlflowTracker(resolve_tracking_uri(uri), experiment, run_name, params, tags, spool=spool)
