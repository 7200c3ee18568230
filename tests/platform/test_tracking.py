"""directsam.tracking: URI resolution, experiments with artifact roots, resume-safe runs."""

from __future__ import annotations

import re
import socket

import pytest

from directsam.tracking import (
    MlflowTracker,
    NoopTracker,
    TrackingError,
    check_reachable,
    ensure_experiment,
    get_tracker,
    lineage,
    resolve_tracking_uri,
)


def test_uri_resolution_order(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(None, tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert resolve_tracking_uri(None, tmp_path) == "http://127.0.0.1:5999"
    assert resolve_tracking_uri("sqlite:///x.db") == "sqlite:///x.db"
    with pytest.raises(TrackingError, match="file store"):
        resolve_tracking_uri("./mlruns")


@pytest.mark.parametrize(
    "uri, words",
    [
        ("127.0.0.1:5000", "missing http:// (did you mean http://127.0.0.1:5000?)"),
        ("mlflow.internal:443/prefix", "missing http://"),
        ("file:///tmp/mlruns", "file store is refused"),
        ("htp://host:5000", "unsupported scheme htp://"),
    ],
)
def test_uris_mlflow_would_refuse_or_misread_name_the_flag(uri, words):
    with pytest.raises(TrackingError, match="^--tracking-uri " + re.escape(uri)) as info:
        resolve_tracking_uri(uri)
    assert words in str(info.value)
    for fine in ("http://h:5000", "https://h", "sqlite:////x/m.db", "postgresql+psycopg2://h/db"):
        assert resolve_tracking_uri(fine) == fine


def test_store_checks_never_create_the_store(tmp_path):
    from directsam.tracking import check_store

    db = tmp_path / "sub" / "mlflow.db"
    check_store(f"sqlite:///{db}")  # creatable: fine, and not created
    assert not (tmp_path / "sub").exists()
    with pytest.raises(TrackingError, match="no MLflow store"):
        check_store(f"sqlite:///{db}", must_exist=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(TrackingError, match="cannot create"):
        check_store(f"sqlite:///{tmp_path / 'file' / 'm.db'}")
    with pytest.raises(TrackingError, match="is a folder"):
        check_store(f"sqlite:///{tmp_path}")


def test_unreachable_server_fails_fast_with_advice():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TrackingError, match="unreachable.*mlflow server"):
        check_reachable(f"http://127.0.0.1:{port}", timeout_s=2)


def test_experiment_has_explicit_artifact_root(mlflow_uri, tmp_path):
    from mlflow.tracking import MlflowClient

    exp_id = ensure_experiment("directsam-test", mlflow_uri)
    assert ensure_experiment("directsam-test", mlflow_uri) == exp_id
    exp = MlflowClient(mlflow_uri).get_experiment(exp_id)
    assert exp.artifact_location == (tmp_path / "mlartifacts").resolve().as_uri()


def test_same_run_name_resumes_one_run(mlflow_uri, tmp_path):
    from mlflow.tracking import MlflowClient

    first = MlflowTracker(mlflow_uri, "directsam-test", "run-a", params={"lr": 1e-4, "n": 3})
    first.log_metrics({"loss": 1.0}, step=1)
    first.end()
    second = MlflowTracker(mlflow_uri, "directsam-test", "run-a", params={"lr": 5e-5})
    assert second.resumed and second.run_id == first.run_id
    second.log_metrics({"loss": 0.5, "nan": float("nan")}, step=2)
    art = tmp_path / "note.txt"
    art.write_text("hello")
    second.log_artifact(art)
    second.end()
    client = MlflowClient(mlflow_uri)
    runs = client.search_runs([first.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.data.params == {"lr": "0.0001", "n": "3"}  # params logged once, at creation
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(1, 1.0), (2, 0.5)]
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["note.txt"]


def test_noop_tracker_and_lineage():
    tracker = get_tracker(False)
    assert isinstance(tracker, NoopTracker)
    tracker.log_metrics({"loss": 1.0}, step=0)
    info = lineage()
    assert info["directsam_version"] and info["torch"] and info["ray"].startswith("2.60")
