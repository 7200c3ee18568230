"""Replaying a spool into another store, a spooled MLflow model included (no server needed)."""

from __future__ import annotations

from directsam.tracking import TrackingClient
from directsam.tracking.replay import replay, spool_uri
from tests.tracking.server import free_port


def test_a_spooled_run_with_its_model_replays_into_another_store_once(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from directsam.model import load_model, save_checkpoint
    from directsam.training.track import log_checkpoint_to_run

    monkeypatch.setenv("DIRECTSAM_CACHE", str(tmp_path / "cache"))
    ckpt = save_checkpoint(load_model("scratch:tiny"), tmp_path / "ckpt", {"resolution": 64})
    gone = f"http://127.0.0.1:{free_port()}"  # nobody listens: everything is spooled
    client = TrackingClient(gone, tmp_path / "spool", retry_budget_s=0.3)
    ref, _ = client.open_run("directsam-pretrain", "key-1", "run-1", params={"lr": 0.1})
    client.log_metrics(ref, {"loss": 0.5}, 3)
    client.log_model(ref, ckpt, "dsam-replayed", log_checkpoint_to_run)
    client.end_run(ref, "FINISHED")
    assert client.spooled == 4 and spool_uri(tmp_path / "spool") == gone

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    without_logger = replay(tmp_path / "spool", store)
    assert without_logger.failed == [f"model {ckpt}: no model logger given"]
    report = replay(tmp_path / "spool", store, log_model=log_checkpoint_to_run)
    assert report.failed == [] and report.sent == 1  # only the model was still missing
    mlflow = MlflowClient(store)
    run = mlflow.get_run(report.runs["key-1"])
    assert run.info.status == "FINISHED" and run.data.params["lr"] == "0.1"
    assert [(m.step, m.value) for m in mlflow.get_metric_history(run.info.run_id, "loss")] == [
        (3, 0.5)
    ]
    assert mlflow.get_model_version("dsam-replayed", "1").run_id == run.info.run_id
    again = replay(tmp_path / "spool", store, log_model=log_checkpoint_to_run)
    assert again.sent == 0 and again.skipped == 4
    assert len(mlflow.search_model_versions("name = 'dsam-replayed'")) == 1
