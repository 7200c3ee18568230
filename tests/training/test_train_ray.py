"""The training loop end to end on the generated sample, with real Ray Data, Ray Train and MLflow.

One module-scoped local Ray cluster serves every test here. Train local mode
(``num_workers=0``) covers the loop, checkpoints, resume, MLflow and ``directsam predict``;
the ``slow`` test runs a 2-worker gloo DDP group whose worker dies once and is restored.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

from directsam.config import load_config
from directsam.tracking.mlflow import RUN_NAME_TAG
from directsam.training.config import PretrainConfig
from directsam.training.state import STATE_FILE, checkpoint_dir_name, load_training_state
from directsam.training.track import CHECKPOINT_TAG
from tests.training.hooks import exit_once_at_step, record_step

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "configs" / "smoke" / "pretrain.yaml"


def _config(data: Path, storage: Path, uri: str, *overrides: str) -> PretrainConfig:
    """The smoke preset shrunk to the tiny model at 64 px (seconds per step on 2 cores)."""
    base = [
        "init=scratch:tiny",
        f"source.input={data}",
        "data.resolution=64",
        "data.decode_cpus=0.5",
        f"run.storage_path={storage}",
        f"tracking.uri={uri}",
        "tracking.log_every_steps=1",
        "tracking.log_checkpoint_artifact=true",
    ]
    return load_config(PretrainConfig, SMOKE, overrides=[*base, *overrides])


def _runs(uri: str, experiment: str, run_name: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None
    return client.search_runs(
        [exp.experiment_id], filter_string=f"tags.`{RUN_NAME_TAG}` = '{run_name}'"
    )


def _history(uri: str, run_id: str, key: str) -> dict[int, float]:
    from mlflow.tracking import MlflowClient

    return {m.step: m.value for m in MlflowClient(tracking_uri=uri).get_metric_history(run_id, key)}


def _adam_steps(checkpoint: Path) -> set[int]:
    state = load_training_state(checkpoint)["optimizer"]["state"]
    return {int(s["step"]) for s in state.values()}


def test_local_mode_checkpoints_tracks_resumes_and_predicts(ray_local, sample_root, tmp_path):
    from directsam.training.trainer import run_training

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    storage = tmp_path / "runs"
    overrides = ("run.num_workers=0", "checkpoint.every_steps=2", "validation.every_steps=3")
    cfg = _config(
        sample_root, storage, uri, "optim.max_steps=3", "tracking.log_model=true", *overrides
    )

    events = tmp_path / "events.jsonl"
    first = run_training(cfg, step_hooks=[functools.partial(record_step, path=str(events))])
    run_dir = storage / first.run_name
    # The hook saw every step, after its checkpoint, in the one local-mode "worker".
    seen = [json.loads(line) for line in events.read_text().splitlines()]
    assert seen == [
        {"step": s, "rank": 0, "world_size": 1, "local_mode": True, "final": s == 3}
        for s in (1, 2, 3)
    ]
    ckpt3 = run_dir / checkpoint_dir_name(3)
    assert first.checkpoint == str(ckpt3)
    assert first.metrics["step"] == 3 and first.metrics["start_step"] == 0
    assert sorted(p.name for p in run_dir.glob("checkpoint_*")) == [
        checkpoint_dir_name(2),
        checkpoint_dir_name(3),
    ]
    meta = json.loads((ckpt3 / "directsam.json").read_text())
    assert (meta["step"], meta["resolution"], meta["config"]["init"]) == (3, 64, "scratch:tiny")
    assert {"config.json", "model.safetensors", STATE_FILE} <= {p.name for p in ckpt3.iterdir()}
    # training_state.pt loads with weights_only=True; AdamW counted 3 steps for every tensor.
    assert _adam_steps(ckpt3) == {3}

    (run,) = _runs(uri, "directsam-pretrain", first.run_name)
    assert run.info.run_id == first.mlflow_run_id and run.info.status == "FINISHED"
    assert run.data.params["optim.lr"] == "0.001" and run.data.params["init"] == "scratch:tiny"
    assert run.data.tags[CHECKPOINT_TAG] == str(ckpt3)
    for key in ("loss", "lr", "images_per_s"):
        assert sorted(_history(uri, run.info.run_id, key)) == [1, 2, 3], key
    assert _history(uri, run.info.run_id, "lr")[1] == 0.0  # step 0 of a linear warmup
    assert set(_history(uri, run.info.run_id, "val_mean_num_tokens")) == {3}
    artifacts = {
        Path(f.path).name for f in _client(uri).list_artifacts(run.info.run_id, "checkpoint")
    }
    assert {"config.json", "model.safetensors", "directsam.json"} <= artifacts
    # ... and as an MLflow pyfunc model logged in the same run (tracking.log_model).
    (logged,) = _client(uri).search_logged_models(experiment_ids=[run.info.experiment_id])
    assert logged.source_run_id == run.info.run_id

    # Re-submitting the same config with a longer run resumes at step 3: same MLflow run, and
    # AdamW continues its step count (a fresh optimizer would count 2 at step 5).
    second = run_training(_config(sample_root, storage, uri, "optim.max_steps=5", *overrides))
    assert second.run_name == first.run_name and second.mlflow_run_id == first.mlflow_run_id
    assert second.metrics["start_step"] == 3 and second.metrics["step"] == 5
    ckpt5 = run_dir / checkpoint_dir_name(5)
    assert second.checkpoint == str(ckpt5) and _adam_steps(ckpt5) == {5}
    assert load_training_state(ckpt5)["scheduler"]["last_epoch"] == 5
    (run,) = _runs(uri, "directsam-pretrain", first.run_name)
    assert sorted(_history(uri, run.info.run_id, "loss")) == [1, 2, 3, 4, 5]
    # num_to_keep=2 pruned the older ones; the resumed run wrote steps 4 and 5 only.
    assert sorted(p.name for p in run_dir.glob("checkpoint_*")) == [
        checkpoint_dir_name(4),
        checkpoint_dir_name(5),
    ]

    # The final checkpoint is a model `directsam predict` loads (resolution from directsam.json).
    from directsam.cli import main as cli_main

    image = next(sample_root.glob("sa_*/*.jpg"))
    out = tmp_path / "pred"
    assert cli_main(["predict", str(image), "--checkpoint", str(ckpt5), "--output", str(out)]) == 0
    (line,) = (out / "predictions.jsonl").read_text().splitlines()
    assert json.loads(line)["num_tokens"] >= 1


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


@pytest.mark.slow
def test_ddp_two_workers_loss_falls_and_a_killed_worker_resumes(ray_local, tmp_path):
    """2 gloo workers; rank 1 exits hard once the step-4 checkpoint is registered; FailureConfig restarts
    the group from that checkpoint and the run finishes with one MLflow run."""
    from directsam.data.sample import make_sample
    from directsam.training.trainer import run_training

    data = make_sample(
        tmp_path / "sample", num_images=24, seed=1, kind="sa1b", height=96, width=128
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    marker = tmp_path / "killed.txt"
    cfg = _config(
        data,
        tmp_path / "runs",
        uri,
        "optim.max_steps=6",
        "optim.lr=1e-2",
        "optim.warmup_steps=1",
        "optim.augment_p=0",
        "run.num_workers=2",
        "run.cpus_per_worker=0.5",
        "run.max_failures=1",
        "checkpoint.every_steps=2",
        "validation.every_steps=0",
    )
    kill = functools.partial(exit_once_at_step, step=4, rank=1, marker=str(marker))
    result = run_training(cfg, step_hooks=[kill])

    assert marker.read_text() == "killed at step 4\n"
    assert result.metrics["step"] == 6
    assert result.metrics["start_step"] == 4  # the restarted group began at the checkpoint
    ckpt = Path(result.checkpoint)
    assert ckpt.name == checkpoint_dir_name(6) and _adam_steps(ckpt) == {6}
    (run,) = _runs(uri, "directsam-pretrain", result.run_name)
    loss = _history(uri, run.info.run_id, "loss")
    assert set(range(1, 7)) <= set(loss)
    # Seeded run: 0.684 at step 1, 0.618 at step 6 when written (0.683 -> 0.648 at lr 3e-3).
    assert loss[4] < loss[1] and loss[6] < loss[1] - 0.04, loss
