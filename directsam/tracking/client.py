"""Best-effort MLflow: the one client every MLflow write of a job goes through.

Tracking must never cost a run. Each call gets a short HTTP timeout and no hidden MLflow retries
(``MLFLOW_HTTP_REQUEST_MAX_RETRIES=0``, ``MLFLOW_HTTP_REQUEST_TIMEOUT``; MLflow's own default is
7 retries with exponential backoff, about 4 minutes per call); this client retries a failing
call with a short backoff until ``retry_budget_s`` is spent, then goes offline for the rest of
the process. Offline, or after a refusal, every operation is appended to the spool
(:mod:`directsam.tracking.spool`) instead, and nothing here ever raises into the job.

Settings reach Ray workers because a worker builds its own client from the job config
(:func:`apply_http_env` runs in every process that opens one).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from directsam.tracking.spool import SpoolWriter, default_spool_dir

T = TypeVar("T")

RUN_KEY_TAG = "directsam.run_key"
"""Tag that identifies a run across processes, restarts and replays."""
RUN_NAME_TAG = "directsam.run_name"
HTTP_TIMEOUT_S = 10.0
RETRY_BUDGET_S = 5.0
_MAX_PARAM_LEN = 6000  # MLflow 3 limit on a param value
_BATCH = 100  # MLflow's log_batch limit on params
# REST error codes that retrying cannot fix (the server is up and said no).
_REFUSALS = frozenset(
    {
        "RESOURCE_DOES_NOT_EXIST",
        "RESOURCE_ALREADY_EXISTS",
        "INVALID_PARAMETER_VALUE",
        "INVALID_STATE",
        "BAD_REQUEST",
        "PERMISSION_DENIED",
        "UNAUTHENTICATED",
        "NOT_FOUND",
    }
)


def http_env(timeout_s: float = HTTP_TIMEOUT_S) -> dict[str, str]:
    """The ``MLFLOW_HTTP_*`` settings of a bounded client: one try per call, ``timeout_s`` each."""
    return {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, math.ceil(timeout_s))),
    }


def apply_http_env(timeout_s: float = HTTP_TIMEOUT_S) -> None:
    """Set :func:`http_env` in this process (MLflow reads the variables at every request)."""
    os.environ.update(http_env(timeout_s))


@contextlib.contextmanager
def bounded_http(timeout_s: float = HTTP_TIMEOUT_S) -> Iterator[None]:
    """:func:`http_env` for the block, the previous values restored afterwards."""
    saved = {k: os.environ.get(k) for k in http_env(timeout_s)}
    os.environ.update(http_env(timeout_s))
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def default_artifact_location(uri: str) -> str | None:
    """Artifact root beside a sqlite store (``mlartifacts/``); None lets a server decide."""
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///") :])
        return (db.parent / "mlartifacts").resolve().as_uri()
    return None


def ensure_experiment(
    name: str, uri: str, artifact_location: str | None = None, client: Any = None
) -> str:
    """Return the id of experiment ``name``, creating it with an explicit artifact location."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = client or MlflowClient(tracking_uri=uri)
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


def first_line(err: BaseException) -> str:
    """A short one-line description of ``err`` (MLflow messages can span pages)."""
    text = str(err)
    for needle, short in _CAUSES:
        if needle in text:
            return short
    lines = text.strip().splitlines()
    return f"{type(err).__name__}: {lines[0][:200]}" if lines else type(err).__name__


# Substrings of requests/urllib3 errors (wrapped in MlflowException) -> what they mean.
_CAUSES = (
    ("Connection refused", "connection refused"),
    ("NewConnectionError", "connection refused"),
    ("Read timed out", "timed out"),
    ("ConnectTimeout", "timed out"),
    ("RemoteDisconnected", "connection lost"),
    ("Connection aborted", "connection lost"),
    ("Connection reset", "connection lost"),
)


def is_refusal(err: BaseException) -> bool:
    """True when the server answered and refused (retrying cannot help)."""
    return getattr(err, "error_code", None) in _REFUSALS


def _finite(metrics: dict[str, Any]) -> dict[str, float]:
    """``metrics`` as floats, without None, NaN and values that are not numbers."""
    out = {}
    for key, value in metrics.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if number == number:
            out[key] = number
    return out


@dataclass
class RunRef:
    """How every process names one run: experiment, the ``directsam.run_key`` tag, the id."""

    experiment: str
    key: str
    run_id: str | None = None


class _Unsent(Exception):
    """A call that did not reach the server (internal: the caller spools the operation)."""


class TrackingClient:
    """Bounded, spooling MLflow writes for one tracking URI.

    Args:
        uri: resolved tracking URI (``http(s)://`` server or ``sqlite:///`` file).
        spool: spool folder; default ``$DIRECTSAM_CACHE/mlflow-spool/adhoc``.
        timeout_s: HTTP timeout of one request.
        retry_budget_s: seconds a failing call is retried before the client goes offline.
        role: name part of the spool file (``driver``, ``rank0`` ...).

    Attributes:
        offline: why the client stopped calling the server, or None while online.
        spooled: operations written to the spool by this client.
    """

    def __init__(
        self,
        uri: str,
        spool: str | os.PathLike[str] | None = None,
        *,
        timeout_s: float = HTTP_TIMEOUT_S,
        retry_budget_s: float = RETRY_BUDGET_S,
        role: str = "driver",
    ):
        self.uri = uri
        self.timeout_s = timeout_s
        self.retry_budget_s = retry_budget_s
        self.spool = SpoolWriter(spool or default_spool_dir("adhoc"), uri, role)
        self.offline: str | None = None
        self.refused: list[str] = []
        self._client: Any = None
        self._experiments: dict[str, str] = {}
        apply_http_env(timeout_s)

    # ------------------------------------------------------------------ plumbing

    @property
    def spooled(self) -> int:
        return self.spool.count

    def reason(self) -> str | None:
        """Why records were spooled: the server gone, else the first refusal (None: neither)."""
        if self.offline:
            return f"unreachable: {self.offline}"
        return f"refused: {self.refused[0]}" if self.refused else None

    @property
    def spool_path(self) -> Path:
        """The spool folder (what ``directsam tracking replay`` takes)."""
        return self.spool.folder

    def mlflow(self) -> Any:
        """The underlying ``MlflowClient`` (created on first use)."""
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(tracking_uri=self.uri)
        return self._client

    def call(self, what: str, fn: Callable[[Any], T]) -> T:
        """``fn(MlflowClient)`` with retries inside the budget.

        Raises:
            _Unsent: offline (now or before), or the server refused the call.
        """
        if self.offline:
            raise _Unsent(self.offline)
        start, delay = time.monotonic(), 0.25
        while True:
            try:
                return fn(self.mlflow())
            except Exception as err:  # noqa: BLE001 - any failure is the tracking's, not the job's
                if is_refusal(err):
                    self.refused.append(f"{what}: {first_line(err)}")
                    raise _Unsent(first_line(err)) from None
                if time.monotonic() - start + delay > self.retry_budget_s:
                    self.offline = f"{what}: {first_line(err)}"
                    raise _Unsent(self.offline) from None
                time.sleep(delay)
                delay = min(2 * delay, 2.0)

    def _spool(self, op: str, run: RunRef | None, **fields: Any) -> None:
        try:
            self.spool.write(op, asdict(run) if run is not None else None, **fields)
        except OSError as err:  # a full or read-only disk must not fail the job either
            print(f"directsam: warning: cannot write the tracking spool: {err}", file=sys.stderr)

    def experiment_id(self, name: str) -> str:
        """Id of experiment ``name``, created with an explicit artifact root when missing."""
        if name not in self._experiments:
            self._experiments[name] = self.call(
                "experiment", lambda c: ensure_experiment(name, self.uri, client=c)
            )
        return self._experiments[name]

    def find_run(self, run: RunRef) -> Any | None:
        """The MLflow run tagged with ``run.key`` (newest first), or None."""
        exp = self.experiment_id(run.experiment)
        found = self.call(
            "search",
            lambda c: c.search_runs(
                [exp],
                filter_string=f"tags.`{RUN_KEY_TAG}` = '{run.key}'",
                max_results=1,
                order_by=["attributes.start_time DESC"],
            ),
        )
        return found[0] if found else None

    def _run_id(self, run: RunRef) -> str:
        """``run.run_id``, else the run found (or created bare) by its key."""
        if run.run_id is None:
            existing = self.find_run(run)
            if existing is None:
                exp = self.experiment_id(run.experiment)
                existing = self.call(
                    "create run",
                    lambda c: c.create_run(exp, tags={RUN_KEY_TAG: run.key}),
                )
            run.run_id = existing.info.run_id
        return run.run_id

    # ------------------------------------------------------------------ operations

    def open_run(
        self,
        experiment: str,
        key: str,
        run_name: str,
        params: dict[str, Any] | None = None,
        tags: dict[str, Any] | None = None,
        reopen: bool = True,
    ) -> tuple[RunRef, bool]:
        """Find the run tagged ``key`` (set back to RUNNING when ``reopen``) or create it with
        ``params``; returns (its ref, whether it existed). Spools when the server is gone."""
        ref = RunRef(experiment, key)
        all_tags = {RUN_KEY_TAG: key, RUN_NAME_TAG: run_name}
        all_tags.update({k: str(v) for k, v in (tags or {}).items()})
        clean = {k: str(v)[:_MAX_PARAM_LEN] for k, v in (params or {}).items()}
        try:
            existing = self.find_run(ref) if reopen else None
            if existing is not None:
                ref.run_id = existing.info.run_id
                if existing.info.status != "RUNNING":
                    self.call("reopen", lambda c: c.update_run(ref.run_id, status="RUNNING"))
            else:
                exp = self.experiment_id(experiment)
                created = self.call(
                    "create run", lambda c: c.create_run(exp, run_name=run_name, tags=all_tags)
                )
                ref.run_id = created.info.run_id
        except _Unsent:
            self._spool("open_run", ref, run_name=run_name, params=clean, tags=all_tags,
                        reopen=reopen)  # fmt: skip
            return ref, False
        if existing is not None:
            self.set_tags(ref, all_tags)
        elif clean:
            self.log_params(ref, clean)
        return ref, existing is not None

    def log_params(self, run: RunRef, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = {k: str(v)[:_MAX_PARAM_LEN] for k, v in params.items()}
        names = list(items)
        for i in range(0, len(names), _BATCH):
            chunk = {k: items[k] for k in names[i : i + _BATCH]}
            try:
                run_id = self._run_id(run)
                batch = [Param(k, v) for k, v in chunk.items()]
                self.call("log params", lambda c, b=batch, r=run_id: c.log_batch(r, params=b))
            except _Unsent:
                self._spool("log_params", run, params=chunk)

    def log_metrics(
        self, run: RunRef, metrics: dict[str, float], step: int = 0, timestamp: int | None = None
    ) -> None:
        """Log ``metrics`` at ``step``; None and NaN values are dropped."""
        from mlflow.entities import Metric

        now = timestamp if timestamp is not None else int(time.time() * 1000)
        values = _finite(metrics)
        if not values:
            return
        try:
            run_id = self._run_id(run)
            items = [Metric(k, v, now, int(step)) for k, v in values.items()]
            self.call("log metrics", lambda c: c.log_batch(run_id, metrics=items))
        except _Unsent:
            self._spool("log_metrics", run, metrics=values, step=int(step), timestamp=now)

    def set_tags(self, run: RunRef, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        values = {k: str(v) for k, v in tags.items()}
        try:
            run_id = self._run_id(run)
            items = [RunTag(k, v) for k, v in values.items()]
            self.call("set tags", lambda c: c.log_batch(run_id, tags=items))
        except _Unsent:
            self._spool("set_tags", run, tags=values)

    def log_artifact(
        self, run: RunRef, path: str | os.PathLike[str], artifact_path: str | None = None
    ) -> None:
        """Upload a file or a folder's contents (spooled as its absolute local path)."""
        p = Path(path).resolve()
        try:
            run_id = self._run_id(run)
            if p.is_dir():
                self.call("log artifacts", lambda c: c.log_artifacts(run_id, str(p), artifact_path))
            else:
                self.call("log artifact", lambda c: c.log_artifact(run_id, str(p), artifact_path))
        except _Unsent:
            self._spool("log_artifact", run, path=str(p), artifact_path=artifact_path)

    def log_model(
        self,
        run: RunRef,
        checkpoint_dir: str | os.PathLike[str],
        registered_model_name: str | None,
        log: Callable[[str, str | None, str, str], Any],
    ) -> None:
        """Log a checkpoint as an MLflow model with ``log(dir, name, run_id, uri)``."""
        directory = str(Path(checkpoint_dir).resolve())
        try:
            run_id = self._run_id(run)
            self.call(
                "log model", lambda c: log(directory, registered_model_name, run_id, self.uri)
            )
        except _Unsent:
            self._spool(
                "log_model",
                run,
                checkpoint_dir=directory,
                registered_model_name=registered_model_name,
            )

    def end_run(self, run: RunRef, status: str = "FINISHED") -> None:
        """Mark the run ``status``; never raises (it may run while the job's own error unwinds)."""
        now = int(time.time() * 1000)
        try:
            run_id = self._run_id(run)
            self.call("end run", lambda c: c.set_terminated(run_id, status=status, end_time=now))
        except _Unsent:
            self._spool("end_run", run, status=status, end_time=now)
        except Exception as err:  # noqa: BLE001 - anything at all: the job's error comes first
            self._spool("end_run", run, status=status, end_time=now, error=first_line(err))


def as_client(tracking: TrackingClient | str) -> TrackingClient:
    """``tracking`` itself, or a :class:`TrackingClient` for a tracking URI."""
    return tracking if isinstance(tracking, TrackingClient) else TrackingClient(tracking)
