"""Lineage: which code and library versions produced a checkpoint, shard set or MLflow run."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from pathlib import Path
from typing import Any


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def git_commit() -> str | None:
    """The git commit of the directsam source tree, when it is a checkout (else None)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def lineage() -> dict[str, Any]:
    """Versions of directsam, its git commit and the libraries that shape results."""
    import directsam

    return {
        "directsam_version": directsam.__version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "ray": _version("ray"),
        "torch": _version("torch"),
        "transformers": _version("transformers"),
        "mlflow": _version("mlflow") or _version("mlflow-skinny"),
    }
