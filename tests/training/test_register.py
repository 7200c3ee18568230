"""The end of a training run registers its final checkpoint in the MLflow model registry."""

from __future__ import annotations

import pytest

from directsam.cli.train import _parser, build_config


def test_register_model_flag_sets_the_tracking_key():
    args = _parser("pretrain", "pretrain").parse_args(["--data", "/d", "--register-model", "ds"])
    cfg = build_config(args, "pretrain")
    assert cfg.tracking.registered_model_name == "ds"
    assert cfg.tracking.log_model is False  # implied at finish time, not rewritten


def test_finish_run_registers_a_version_that_loads_as_a_checkpoint_spec(
    tmp_path, monkeypatch, mlflow_uri
):
    import torch
    from mlflow.tracking import MlflowClient
    from ray.train import Checkpoint

    from directsam.model import load_model, save_checkpoint
    from directsam.tracking import MlflowTracker
    from directsam.training.track import finish_run

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    monkeypatch.setenv("DIRECTSAM_CACHE", str(tmp_path / "cache"))
    model = load_model("scratch:tiny")
    ckpt = save_checkpoint(model, tmp_path / "ckpt", {"resolution": 64, "step": 7})
    tracker = MlflowTracker(mlflow_uri, "directsam-pretrain", "reg-run")
    run_id = tracker.run_id
    finish_run(
        tracker,
        Checkpoint.from_directory(str(ckpt)),
        log_artifact=False,
        registered_model_name="dsam-reg",
    )

    client = MlflowClient(tracking_uri=mlflow_uri)
    assert client.get_run(run_id).info.status == "FINISHED"
    version = client.get_model_version("dsam-reg", "1")
    assert version.run_id == run_id
    loaded = load_model("models:/dsam-reg/1")
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name


def test_register_model_is_documented_in_help(capsys):
    with pytest.raises(SystemExit):
        _parser("pretrain", "pretrain").parse_args(["--help"])
    assert "--register-model NAME" in capsys.readouterr().out
