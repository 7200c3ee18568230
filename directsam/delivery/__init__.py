"""Delivering results: the token API, SA-1B-style export, MLflow models, Hub and ONNX export.

* :func:`tokenize` (``directsam.tokenize``): images -> SAM-AMG-style token records + label maps.
* :class:`TokenizeStage`: the same as a Ray Data model stage (``directsam segment``).
* :func:`log_checkpoint_model`: a checkpoint as an MLflow pyfunc, optionally registered;
  ``models:/NAME/VERSION`` specs load everywhere through :func:`resolve_model_uri`.
* :func:`export_hub`, :func:`export_onnx`: ``directsam export``.

Importing this package loads nothing heavy; names resolve on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "tokenize": "directsam.delivery.tokens",
    "labels_to_records": "directsam.inference.tokens",
    "labels_to_rles": "directsam.inference.tokens",
    "TokenizeStage": "directsam.delivery.stage",
    "sa1b_document": "directsam.delivery.sa1b_json",
    "write_sa1b": "directsam.delivery.sa1b_json",
    "segment_image": "directsam.delivery.segment",
    "run_segment": "directsam.delivery.segment",
    "log_checkpoint_model": "directsam.delivery.registry",
    "save_pyfunc_model": "directsam.delivery.registry",
    "resolve_model_uri": "directsam.delivery.registry",
    "export_hub": "directsam.delivery.hub_export",
    "export_onnx": "directsam.delivery.onnx_export",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'directsam.delivery' has no attribute {name!r}")
