"""Send a tracking spool to MLflow, idempotently: what the server already has is skipped, so a
second replay (or one after a partial replay) adds nothing.

Runs are found by ``run_id`` when the spool knows it, else by the ``directsam.run_key`` tag
(created when missing). Metrics count as present when the run has the same (key, step,
timestamp, value); params, tags and the final status when equal; artifacts when their names
are listed; an MLflow model when the run has a logged model.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from directsam.tracking.client import (
    RUN_KEY_TAG,
    bounded_http,
    ensure_experiment,
    first_line,
    is_refusal,
)
from directsam.tracking.spool import read_records


@dataclass
class ReplayReport:
    """What a replay did."""

    uri: str
    sent: int = 0
    """Spooled operations that changed the server."""
    skipped: int = 0
    """Spooled operations the server already reflected."""
    failed: list[str] = field(default_factory=list)
    """Why operations were refused or impossible (a changed param, an artifact file gone);
    each spooled operation counts once: sent, skipped or failed."""
    runs: dict[str, str] = field(default_factory=dict)
    """Run key -> run id of every run the spool touched."""


ModelLogger = Callable[[str, "str | None", str, str], Any]
"""``log(checkpoint_dir, registered_model_name, run_id, tracking_uri)``: logs an MLflow model."""


class _Replayer:
    def __init__(self, uri: str, log_model: ModelLogger | None):
        from mlflow.tracking import MlflowClient

        self.uri = uri
        self.client = MlflowClient(tracking_uri=uri)
        self.report = ReplayReport(uri)
        self._log_model = log_model
        self._experiments: dict[str, str] = {}
        self._history: dict[tuple[str, str], set[tuple[int, int, float]]] = {}
        self._checked: set[str] = set()

    def experiment_id(self, name: str) -> str:
        if name not in self._experiments:
            self._experiments[name] = ensure_experiment(name, self.uri, client=self.client)
        return self._experiments[name]

    def find(self, experiment: str, key: str) -> Any | None:
        found = self.client.search_runs(
            [self.experiment_id(experiment)],
            filter_string=f"tags.`{RUN_KEY_TAG}` = '{key}'",
            max_results=1,
            order_by=["attributes.start_time DESC"],
        )
        return found[0] if found else None

    def run_id(self, ref: dict[str, Any], open_record: dict[str, Any] | None = None) -> str:
        """The run of a spool ``run`` ref: its id when the server knows it, else by key."""
        key = ref["key"]
        if key in self.report.runs:
            return self.report.runs[key]
        run_id = ref.get("run_id")
        if run_id and run_id not in self._checked:
            try:
                self.client.get_run(run_id)
                self._checked.add(run_id)
            except Exception as err:  # noqa: BLE001
                if not is_refusal(err):
                    raise
                run_id = None  # replaying into another server: find or create by key
        if not run_id:
            existing = self.find(ref["experiment"], key)
            if existing is not None:
                run_id = existing.info.run_id
            else:
                rec = open_record or {}
                tags = {RUN_KEY_TAG: key, **(rec.get("tags") or {})}
                run = self.client.create_run(
                    self.experiment_id(ref["experiment"]), run_name=rec.get("run_name"), tags=tags
                )
                run_id = run.info.run_id
        self.report.runs[key] = run_id
        return run_id

    # ------------------------------------------------------------------ operations

    def open_run(self, rec: dict[str, Any]) -> str:
        known = rec["run"]["key"] in self.report.runs or self.find(
            rec["run"]["experiment"], rec["run"]["key"]
        )
        run_id = self.run_id(rec["run"], rec)
        outcomes = {self.set_tags({**rec, "tags": rec.get("tags") or {}}, run_id)}
        if rec.get("params"):
            outcomes.add(self.log_params(rec, run_id))
        if "failed" in outcomes:
            return "failed"
        return "sent" if not known or "sent" in outcomes else "skipped"

    def log_params(self, rec: dict[str, Any], run_id: str | None = None) -> str:
        from mlflow.entities import Param

        run_id = run_id or self.run_id(rec["run"])
        have = self.client.get_run(run_id).data.params
        missing = {k: v for k, v in rec["params"].items() if k not in have}
        items = [Param(k, v) for k, v in missing.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[i : i + 100])
        conflicts = [k for k, v in rec["params"].items() if k in have and have[k] != v]
        for k in conflicts:  # MLflow params cannot change once logged
            self.report.failed.append(f"param {k}: run has {have[k]!r}, spool {rec['params'][k]!r}")
        return "failed" if conflicts else "sent" if items else "skipped"

    def set_tags(self, rec: dict[str, Any], run_id: str | None = None) -> str:
        from mlflow.entities import RunTag

        run_id = run_id or self.run_id(rec["run"])
        have = self.client.get_run(run_id).data.tags
        items = [RunTag(k, v) for k, v in rec["tags"].items() if have.get(k) != v]
        if items:
            self.client.log_batch(run_id, tags=items)
        return "sent" if items else "skipped"

    def log_metrics(self, rec: dict[str, Any]) -> str:
        from mlflow.entities import Metric

        run_id = self.run_id(rec["run"])
        step, ts = int(rec["step"]), int(rec["timestamp"])
        items = []
        for key, value in rec["metrics"].items():
            seen = self._history.get((run_id, key))
            if seen is None:
                history = self.client.get_metric_history(run_id, key)
                seen = {(m.step, m.timestamp, m.value) for m in history}
                self._history[(run_id, key)] = seen
            if (step, ts, float(value)) not in seen:
                items.append(Metric(key, float(value), ts, step))
                seen.add((step, ts, float(value)))
        if items:
            self.client.log_batch(run_id, metrics=items)
        return "sent" if items else "skipped"

    def log_artifact(self, rec: dict[str, Any]) -> str:
        path, artifact_path = Path(rec["path"]), rec.get("artifact_path")
        if not path.exists():
            self.report.failed.append(f"artifact {path}: the local file is gone")
            return "failed"
        run_id = self.run_id(rec["run"])
        listed = {Path(f.path).name for f in self.client.list_artifacts(run_id, artifact_path)}
        wanted = {p.name for p in path.iterdir()} if path.is_dir() else {path.name}
        if wanted <= listed:
            return "skipped"
        if path.is_dir():
            self.client.log_artifacts(run_id, str(path), artifact_path)
        else:
            self.client.log_artifact(run_id, str(path), artifact_path)
        return "sent"

    def log_model(self, rec: dict[str, Any]) -> str:
        run_id = self.run_id(rec["run"])
        experiment_id = self.client.get_run(run_id).info.experiment_id
        logged = self.client.search_logged_models(
            experiment_ids=[experiment_id], filter_string=f"source_run_id = '{run_id}'"
        )
        if logged:
            return "skipped"
        if not Path(rec["checkpoint_dir"]).is_dir():
            self.report.failed.append(f"model {rec['checkpoint_dir']}: the checkpoint is gone")
            return "failed"
        if self._log_model is None:
            self.report.failed.append(f"model {rec['checkpoint_dir']}: no model logger given")
            return "failed"
        self._log_model(rec["checkpoint_dir"], rec.get("registered_model_name"), run_id, self.uri)
        return "sent"

    def end_run(self, rec: dict[str, Any]) -> str:
        run_id = self.run_id(rec["run"])
        if self.client.get_run(run_id).info.status == rec["status"]:
            return "skipped"
        self.client.set_terminated(run_id, status=rec["status"], end_time=rec.get("end_time"))
        return "sent"


def spool_uri(path: str | os.PathLike[str]) -> str | None:
    """The tracking URI recorded in the spool's headers (None when none or several)."""
    uris = {rec.get("uri") for _, rec, _ in read_records(path) if rec["op"] == "header"}
    uris.discard(None)
    return uris.pop() if len(uris) == 1 else None


def replay(
    path: str | os.PathLike[str],
    uri: str | None = None,
    log: Callable[[str], Any] | None = None,
    log_model: ModelLogger | None = None,
) -> ReplayReport:
    """Send every spooled operation at ``path`` (a spool file or folder) to ``uri`` (default:
    the URI the spool was written for), oldest first, skipping what the server already has.

    ``log_model`` logs a spooled MLflow model (training's final checkpoint); the MLflow model
    flavour lives above this package, so the caller passes it (``directsam tracking replay``
    does); without it such records are reported as failed.

    Raises:
        ValueError: nothing to replay, or no single URI to replay to.
        Exception: MLflow errors other than refusals (the server went away: run it again).
    """
    records = [(rec.get("t", 0.0), str(f), n, rec) for f, rec, n in read_records(path)]
    ops = sorted((r for r in records if r[3]["op"] != "header"), key=lambda r: r[:3])
    if not records:
        raise ValueError(f"{path}: no spool file (*.jsonl) there")
    target = uri or spool_uri(path)
    if not target:
        raise ValueError(f"{path}: the spool names no single tracking URI; pass --tracking-uri")
    with bounded_http():
        replayer = _Replayer(target, log_model)
        handlers: dict[str, Callable[[dict[str, Any]], str]] = {
            "open_run": replayer.open_run,
            "log_params": replayer.log_params,
            "set_tags": replayer.set_tags,
            "log_metrics": replayer.log_metrics,
            "log_artifact": replayer.log_artifact,
            "log_model": replayer.log_model,
            "end_run": replayer.end_run,
        }
        for _, _, _, rec in ops:
            handler = handlers.get(rec["op"])
            if handler is None:
                replayer.report.failed.append(f"unknown spool operation {rec['op']!r}")
                continue
            try:
                outcome = handler(rec)
            except Exception as err:  # noqa: BLE001
                if not is_refusal(err):
                    raise
                replayer.report.failed.append(f"{rec['op']}: {first_line(err)}")
                outcome = "failed"
            if outcome != "failed":
                setattr(replayer.report, outcome, getattr(replayer.report, outcome) + 1)
    if log is not None:
        r = replayer.report
        log(
            f"replayed {len(ops)} spooled operations to {target}: {r.sent} sent, {r.skipped} "
            f"already there, {len(r.failed)} failed; runs: {', '.join(sorted(r.runs.values()))}"
        )
    return replayer.report
