"""The MLflow pyfunc of a DirectSAM checkpoint: images in, boundary probabilities or tokens out.

Input: a DataFrame with column ``image`` holding encoded image files (JPEG/PNG bytes; base64
over REST), or an RGB uint8 array ``(B, H, W, 3)`` / ``(H, W, 3)``. Params (all optional):

* ``output``: ``"probs"`` (default) -> float32 ``(B, S, S)`` boundary probabilities in [0, 1]
  at ``out_size`` (default: the model resolution), exactly ``BoundaryPredictor.predict``;
  ``"tokens"`` -> DataFrame ``num_tokens`` (int) and ``masks`` (JSON list of SAM-style records
  at each image's own size, see :func:`directsam.delivery.tokens.tokenize`).
* ``threshold``: for tokens (0 = the checkpoint's, else 0.5).
* ``out_size``: side of the probability maps (0 = the model resolution).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from directsam.model.spec import DEFAULT_RESOLUTION, DEFAULT_THRESHOLD

try:  # the class must subclass PythonModel when MLflow is present (it always is when logging)
    from mlflow.pyfunc import PythonModel
except ImportError:  # pragma: no cover - directsam imports without mlflow
    PythonModel = object  # type: ignore[assignment,misc]


def model_signature() -> Any:
    """``image`` (binary) -> float32 ``(-1, -1, -1)`` probabilities; params output/threshold/out_size."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec

    return ModelSignature(
        inputs=Schema([ColSpec("binary", "image")]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1, -1))]),
        params=ParamSchema(
            [
                ParamSpec("output", "string", "probs"),
                ParamSpec("threshold", "double", 0.0),
                ParamSpec("out_size", "long", 0),
            ]
        ),
    )


def input_images(model_input: Any) -> list[np.ndarray]:
    """pyfunc input -> list of RGB uint8 ``(H, W, 3)`` arrays (see the module docstring)."""
    import base64

    import pandas as pd

    from directsam.delivery.tokens import as_rgb

    if isinstance(model_input, dict) and "image" in model_input:
        model_input = model_input["image"]
    if isinstance(model_input, pd.DataFrame):
        column = model_input["image"] if "image" in model_input else model_input.iloc[:, 0]
        cells = list(column)
    elif isinstance(model_input, np.ndarray) and model_input.dtype == np.uint8:
        return [as_rgb(im) for im in (model_input[None] if model_input.ndim == 3 else model_input)]
    else:
        cells = list(model_input)
    images = []
    for i, cell in enumerate(cells):
        if isinstance(cell, str):  # base64 text (REST clients that did not decode it)
            cell = base64.b64decode(cell)
        images.append(as_rgb(cell, f"row {i}"))
    return images


class DirectSAMPyfunc(PythonModel):
    """Loads the ``checkpoint`` artifact into a ``BoundaryPredictor`` once per process."""

    def load_context(self, context: Any) -> None:
        from directsam.inference.predictor import BoundaryPredictor
        from directsam.model.spec import read_checkpoint_meta

        checkpoint = context.artifacts["checkpoint"]
        config = dict(getattr(context, "model_config", None) or {})
        meta = read_checkpoint_meta(checkpoint)
        self.predictor = BoundaryPredictor(
            checkpoint,
            device=config.get("device", "auto"),
            dtype=config.get("dtype", "auto"),
            resolution=int(meta.get("resolution") or DEFAULT_RESOLUTION),
        )
        self.threshold = float(meta.get("threshold") or DEFAULT_THRESHOLD)

    # No annotations: MLflow 3 reads predict's type hints as a signature and warns on these.
    def predict(self, context, model_input, params=None):
        """Probabilities (``output="probs"``) or token records (``"tokens"``) per image."""
        import pandas as pd

        from directsam.delivery.tokens import tokenize

        params = params or {}
        images = input_images(model_input)
        output = params.get("output") or "probs"
        if output == "probs":
            size = int(params.get("out_size") or 0) or self.predictor.resolution
            return self.predictor.predict(images, out_size=size)
        if output != "tokens":
            raise ValueError(f"params.output must be 'probs' or 'tokens', got {output!r}")
        threshold = float(params.get("threshold") or 0.0) or self.threshold
        results = tokenize(images, self.predictor, threshold=threshold)
        return pd.DataFrame(
            {
                "num_tokens": [len(r["masks"]) for r in results],
                "masks": [json.dumps(r["masks"], separators=(",", ":")) for r in results],
            }
        )
