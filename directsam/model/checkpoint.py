"""Model + metadata -> checkpoint directory (HF ``save_pretrained`` safetensors + ``directsam.json``).

A checkpoint directory is what every other part loads: ``config.json`` and ``model.safetensors``
for ``from_pretrained``, and ``directsam.json`` with the settings it was trained for
(resolution, threshold, thickness, step) plus lineage (package and library versions).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from directsam.atomic import atomic_dir

META_FILE = "directsam.json"


def _lineage() -> dict[str, Any]:
    try:
        from directsam.tracking.lineage import lineage
    except ImportError:  # pragma: no cover - tracking is part of the package
        import torch
        import transformers

        import directsam

        return {
            "directsam_version": directsam.__version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        }
    return lineage()


def save_checkpoint(model: Any, directory: str | os.PathLike[str], meta: Mapping[str, Any]) -> Path:
    """Write ``model`` and ``meta`` to ``directory`` atomically; returns the directory.

    The files are written to a temporary sibling directory and renamed into place
    (``directsam.atomic.atomic_dir``), so a reader (or a crash) never sees a half-written
    checkpoint. An existing ``directory`` is replaced.

    Args:
        model: a ``PreTrainedModel`` (``SegformerForSemanticSegmentation``); a
            ``torch.compile`` wrapper is unwrapped.
        directory: destination checkpoint directory.
        meta: JSON-serialisable settings, e.g. ``{"resolution": 1024, "threshold": 0.5,
            "thickness": 3, "step": 1000}``; a ``lineage`` key is merged over the automatic one.

    Returns:
        The checkpoint directory as a ``Path``.
    """
    model = getattr(model, "_orig_mod", model)  # torch.compile wrapper -> the HF model
    directory = Path(directory)
    record = dict(meta)
    record["lineage"] = {**_lineage(), **dict(record.get("lineage") or {})}
    text = json.dumps(record, indent=2, sort_keys=True, default=str)

    with atomic_dir(directory) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        (tmp / META_FILE).write_text(text + "\n")
    return directory


def read_meta(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``directsam.json`` of a checkpoint directory, or ``{}`` when it has none."""
    path = Path(directory) / META_FILE
    if not path.is_file():
        return {}
    return json.loads(path.read_text())
