"""MLflow model registry: a logged + registered checkpoint loads by ``models:/`` URI and predicts
the checkpoint's probabilities; ``models:/`` specs load through ``directsam.model``."""

from __future__ import annotations

import json

import numpy as np
import pytest


@pytest.fixture
def registry_env(tmp_path, monkeypatch, mlflow_uri):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    monkeypatch.setenv("DIRECTSAM_CACHE", str(tmp_path / "cache"))
    return mlflow_uri


def test_registered_model_loads_by_uri_and_matches_checkpoint(
    registry_env, tiny_checkpoint, images, tmp_path
):
    import mlflow.pyfunc
    from mlflow.tracking import MlflowClient

    from directsam.delivery.registry import images_frame, log_checkpoint_model, pip_requirements
    from directsam.delivery.tokens import tokenize
    from directsam.inference import BoundaryPredictor
    from directsam.model import checkpoint_sha, load_model, tensors_sha
    from directsam.tracking import MlflowTracker

    # As the training jobs will: log into their own (open) run, registering a version.
    tracker = MlflowTracker(registry_env, "directsam-pretrain", "run-a")
    uri = log_checkpoint_model(
        tiny_checkpoint, "dsam-tiny", run_id=tracker.run_id, tracking_uri=registry_env
    )
    assert uri == "models:/dsam-tiny/1"
    client = MlflowClient(tracking_uri=registry_env)
    assert client.get_run(tracker.run_id).info.status == "RUNNING"  # left as it was
    version = client.get_model_version("dsam-tiny", "1")
    assert version.run_id == tracker.run_id

    model = mlflow.pyfunc.load_model(uri)
    assert model.metadata.signature.inputs.input_names() == ["image"]
    reqs = set(pip_requirements())
    assert any(r.startswith("torch==") and "+" not in r for r in reqs)
    probs = model.predict(images_frame(images))
    ref = BoundaryPredictor(str(tiny_checkpoint), resolution=64).predict(images)
    assert probs.shape == (3, 64, 64) and probs.dtype == np.float32
    np.testing.assert_allclose(probs, ref, atol=1e-6)
    big = model.predict(images_frame(images[:1]), params={"out_size": 96})
    assert big.shape == (1, 96, 96)

    # Tokens output = tokenize on the same images.
    t = float(np.median(ref[0]))
    frame = model.predict(images_frame(images), params={"output": "tokens", "threshold": t})
    expected = tokenize(images, str(tiny_checkpoint), threshold=t)
    assert list(frame["num_tokens"]) == [len(e["masks"]) for e in expected]
    assert json.loads(frame["masks"][1]) == json.loads(json.dumps(expected[1]["masks"]))

    # models:/ works wherever a checkpoint spec is accepted.
    loaded = load_model(uri)
    assert tensors_sha(loaded) == tensors_sha(load_model(str(tiny_checkpoint)))
    assert checkpoint_sha(uri) == checkpoint_sha(str(tiny_checkpoint))
    via_uri = BoundaryPredictor(uri, resolution=64).predict(images)
    np.testing.assert_array_equal(via_uri, ref)
    assert BoundaryPredictor(uri).meta["resolution"] == 64
