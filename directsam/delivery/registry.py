"""Checkpoint directory <-> MLflow model: a pyfunc (images -> probabilities or tokens) with its
signature and pinned requirements, logged to a run and optionally registered; and
``models:/NAME/VERSION`` -> a local checkpoint directory for :func:`directsam.model.load_model`.

The pyfunc carries the checkpoint directory itself as its ``checkpoint`` artifact (the HF
files + ``directsam.json``) and the ``directsam`` package as code, so loading it needs no
install of this project, and any ``models:/`` URI resolves to a plain checkpoint directory.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from directsam.delivery.pyfunc import DirectSAMPyfunc, model_signature
from directsam.model.spec import CHECKPOINT_ARTIFACT

# models:/ -> checkpoint directory is a checkpoint-spec rule (directsam.model.spec); re-exported
# here, where the models are logged.
from directsam.model.spec import find_checkpoint_dir as find_checkpoint_dir
from directsam.model.spec import resolve_model_uri as resolve_model_uri

MODEL_NAME = "model"  # the logged model's name inside a run
DEFAULT_EXPERIMENT = "directsam-models"
# Distributions the pyfunc imports at load/predict time (pinned to the logging environment).
_REQUIREMENTS = (
    "mlflow",
    "torch",
    "transformers",
    "safetensors",
    "numpy",
    "pandas",
    "pillow",
    "opencv-python-headless",
    "scipy",
    "pycocotools",
)
_MODEL_FILES = ("config.json", "model.safetensors", "directsam.json")


def pip_requirements() -> list[str]:
    """``name==version`` for every distribution the pyfunc needs, as installed here.

    Local version labels (``torch 2.13.0+cpu``) are dropped: the index serves ``2.13.0``.
    """
    reqs = []
    for dist in _REQUIREMENTS:
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            if dist == "mlflow":
                version = importlib.metadata.version("mlflow-skinny")
                dist = "mlflow-skinny"
            else:
                continue
        reqs.append(f"{dist}=={version.split('+', 1)[0]}")
    return reqs


def _model_files(checkpoint_dir: Path) -> Path:
    """A temporary copy of the files that make a loadable checkpoint (no optimizer state)."""
    if not (checkpoint_dir / "model.safetensors").is_file():
        raise FileNotFoundError(f"checkpoint directory {checkpoint_dir} has no model.safetensors")
    tmp = Path(tempfile.mkdtemp(prefix="directsam-model-")) / CHECKPOINT_ARTIFACT
    tmp.mkdir()
    for name in _MODEL_FILES:
        if (checkpoint_dir / name).is_file():
            shutil.copy2(checkpoint_dir / name, tmp / name)
    return tmp


def _pyfunc_kwargs(checkpoint_dir: Path, device: str) -> dict[str, Any]:
    import directsam

    return {
        "python_model": DirectSAMPyfunc(),
        "artifacts": {CHECKPOINT_ARTIFACT: str(checkpoint_dir)},
        "signature": model_signature(),
        "pip_requirements": pip_requirements(),
        "code_paths": [str(Path(directsam.__file__).parent)],
        "model_config": {"device": device},
        "metadata": {"directsam_version": directsam.__version__},
    }


def save_pyfunc_model(
    checkpoint_dir: str | os.PathLike[str], path: str | os.PathLike[str], device: str = "auto"
) -> Path:
    """Write the pyfunc model of a checkpoint directory to ``path`` (no tracking server)."""
    import mlflow.pyfunc

    files = _model_files(Path(checkpoint_dir))
    try:
        mlflow.pyfunc.save_model(str(path), **_pyfunc_kwargs(files, device))
    finally:
        shutil.rmtree(files.parent, ignore_errors=True)
    return Path(path)


@contextlib.contextmanager
def _tracking(uri: str) -> Iterator[None]:
    """Point MLflow's fluent API at ``uri`` for the block, then restore the global URI and the
    ``MLFLOW_TRACKING_URI`` variable exactly as they were (MLflow's setter changes both)."""
    import mlflow
    from mlflow.tracking._tracking_service import utils

    saved_global, saved_env = utils._tracking_uri, os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(saved_global)
        if saved_env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = saved_env


def log_checkpoint_model(
    checkpoint_dir: str | os.PathLike[str],
    registered_model_name: str | None = None,
    *,
    run_id: str | None = None,
    tracking_uri: str | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    device: str = "auto",
) -> str:
    """Log a checkpoint as an MLflow pyfunc model and optionally register it.

    The training jobs call this with the final checkpoint and their run id; it also works
    stand-alone (a new run in ``experiment``).

    Args:
        checkpoint_dir: a checkpoint directory (``model.safetensors`` + ``config.json`` +
            ``directsam.json``); optimizer state beside them is not logged.
        registered_model_name: register the model under this name (a new version).
        run_id: log into this existing run (its status is left as it was).
        tracking_uri: default :func:`directsam.tracking.resolve_tracking_uri`.
        experiment: experiment for a new run when ``run_id`` is None.
        device: where the pyfunc runs by default (``auto`` = CUDA when available).

    Returns:
        ``models:/NAME/VERSION`` when registered, else the logged model's ``models:/<id>`` URI.
    """
    import mlflow
    import mlflow.pyfunc
    from mlflow.tracking import MlflowClient

    from directsam.tracking import ensure_experiment, resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri=uri)
    if run_id is None:
        experiment_id = ensure_experiment(experiment, uri)
        run_id = client.create_run(experiment_id, run_name="model").info.run_id
        status = "FINISHED"
    else:
        status = client.get_run(run_id).info.status
    files = _model_files(Path(checkpoint_dir))
    try:
        with _tracking(uri), warnings.catch_warnings():
            # An input example would load the model at log time just to sample an output.
            warnings.filterwarnings("ignore", message=".*input example was not provided")
            mlflow.start_run(run_id=run_id)
            try:
                info = mlflow.pyfunc.log_model(
                    name=MODEL_NAME,
                    registered_model_name=registered_model_name,
                    **_pyfunc_kwargs(files, device),
                )
            finally:
                mlflow.end_run(status=status)
    finally:
        shutil.rmtree(files.parent, ignore_errors=True)
    if registered_model_name:
        version = info.registered_model_version
        return f"models:/{registered_model_name}/{version}"
    return info.model_uri


def images_frame(images: list[Any]) -> Any:
    """A pyfunc input DataFrame (column ``image`` of PNG bytes) from RGB uint8 arrays or files."""
    import io

    import pandas as pd
    from PIL import Image

    cells = []
    for image in images:
        if isinstance(image, (str, os.PathLike)):
            cells.append(Path(image).read_bytes())
            continue
        buf = io.BytesIO()
        Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buf, format="PNG")
        cells.append(buf.getvalue())
    return pd.DataFrame({"image": cells})
