"""The best-effort MLflow client against a real ``mlflow server`` that dies and comes back.

One server serves the module. The sequence: runs logged while it is up; the server's process
group killed; the same client keeps logging (spooled, never raising, the job's own error
first); a new run opened while it is down; the server restarted on the same store; the spool
replayed (the server then holds exactly what an uninterrupted client would have written) and
replayed again (nothing added).
"""

from __future__ import annotations

import json

import pytest

from directsam.tracking import MlflowTracker, TrackingClient
from directsam.tracking.client import RUN_KEY_TAG
from directsam.tracking.replay import replay
from directsam.tracking.spool import count_records, read_records
from tests.tracking.server import MlflowServer

pytestmark = pytest.mark.slow  # a server process, killed and restarted


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = MlflowServer(tmp_path_factory.mktemp("mlflow_server")).start()
    yield srv
    srv.kill()


def _history(client, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def test_outage_is_spooled_and_replay_restores_it_once(server, tmp_path):
    from mlflow.tracking import MlflowClient

    spool = tmp_path / "spool"
    art = tmp_path / "summary.txt"
    art.write_text("results\n")
    tracker = MlflowTracker(
        server.uri, "outage", "run-a", params={"lr": 0.1}, tags={"t": "1"}, spool=spool,
        retry_budget_s=1.0,
    )  # fmt: skip
    assert tracker.run_id and not tracker.resumed
    for step in (1, 2):
        tracker.log_metrics({"loss": 1.0 / step, "skip": float("nan")}, step)
    # A refusal (a param changed after creation) is spooled too, but the client stays online.
    tracker.log_params({"lr": 0.2})
    assert tracker.offline is None and tracker.spooled == 1
    assert count_records(spool) == 1

    server.kill()
    for step in (3, 4):
        tracker.log_metrics({"loss": 1.0 / step}, step)
    assert tracker.offline and "log metrics" in tracker.offline
    tracker.set_tags({"directsam.checkpoint": "/ckpt"})
    tracker.log_artifact(art)
    with pytest.raises(RuntimeError, match="the job's own error"):
        try:
            raise RuntimeError("the job's own error")
        except RuntimeError:
            tracker.end("FAILED")  # must not raise over the job's error
            raise
    # A run opened while the server is gone: created at replay, found by its key.
    late = MlflowTracker(server.uri, "outage", "run-b", params={"n": 3}, spool=spool,
                         retry_budget_s=1.0)  # fmt: skip
    assert late.run_id is None
    late.log_metrics({"acc": 0.5}, 7)
    late.end("FINISHED")
    assert tracker.warning().startswith(f"warning: MLflow at {server.uri} did not take 6 ")
    assert f"directsam tracking replay {spool}" in tracker.warning()

    records = [rec for _, rec, _ in read_records(spool)]
    (header,) = [r for r in records if r["op"] == "header"]  # one process, one file
    assert header["uri"] == server.uri
    assert header["mlflow_http_env"]["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"
    ops = [r["op"] for r in records if r["op"] != "header"]
    assert ops == ["log_params", "log_metrics", "log_metrics", "set_tags", "log_artifact",
                   "end_run", "open_run", "log_metrics", "end_run"]  # fmt: skip

    server.start()
    report = replay(spool)
    client = MlflowClient(server.uri)
    assert _history(client, tracker.run_id, "loss") == [(1, 1.0), (2, 0.5), (3, 1 / 3), (4, 0.25)]
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FAILED" and run.data.params == {"lr": "0.1"}
    assert run.data.tags["directsam.checkpoint"] == "/ckpt" and run.data.tags["t"] == "1"
    assert [f.path for f in client.list_artifacts(tracker.run_id)] == ["summary.txt"]
    assert report.failed == ["param lr: run has '0.1', spool '0.2'"]  # MLflow params are final
    (b,) = client.search_runs(
        [run.info.experiment_id], filter_string=f"tags.`{RUN_KEY_TAG}` = 'run-b'"
    )
    assert b.info.status == "FINISHED" and b.data.params == {"n": "3"}
    assert _history(client, b.info.run_id, "acc") == [(7, 0.5)]
    assert report.runs == {"run-a": tracker.run_id, "run-b": b.info.run_id}

    again = replay(spool)
    assert again.sent == 0 and again.skipped == report.sent + report.skipped
    assert _history(client, tracker.run_id, "loss") == [(1, 1.0), (2, 0.5), (3, 1 / 3), (4, 0.25)]
    assert len(client.search_runs([run.info.experiment_id])) == 2


def test_same_key_reopens_one_run_and_another_key_gets_a_new_one(server, tmp_path):
    from mlflow.tracking import MlflowClient

    first = MlflowTracker(server.uri, "keys", "same-name", key="k1", spool=tmp_path)
    first.log_metrics({"loss": 1.0}, 1)
    first.end()
    again = MlflowTracker(server.uri, "keys", "same-name", key="k1", spool=tmp_path)
    other = MlflowTracker(server.uri, "keys", "same-name", key="k2", spool=tmp_path)
    assert again.resumed and again.run_id == first.run_id
    assert not other.resumed and other.run_id != first.run_id
    client = MlflowClient(server.uri)
    assert client.get_run(first.run_id).info.status == "RUNNING"  # reopened by its own key
    assert client.get_run(other.run_id).data.tags["directsam.run_name"] == "same-name"


def test_client_settings_bound_mlflow_http_calls(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "7")
    client = TrackingClient("http://127.0.0.1:9", tmp_path, timeout_s=3.2, retry_budget_s=0.5)
    import os

    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "4"
    ref, existed = client.open_run("e", "k", "n", params={"a": 1})
    assert ref.run_id is None and not existed and client.offline
    (_, rec, _), = [r for r in read_records(tmp_path) if r[1]["op"] == "open_run"]  # fmt: skip
    assert rec["params"] == {"a": "1"} and rec["tags"][RUN_KEY_TAG] == "k"
    assert json.loads(json.dumps(rec))["run"] == {"experiment": "e", "key": "k", "run_id": None}
