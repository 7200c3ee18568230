"""Fixtures for the delivery tests: a tiny saved checkpoint (64 px) and small RGB images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

RESOLUTION = 64


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """``scratch:tiny`` saved as a checkpoint directory trained "for" 64 px, threshold 0.5."""
    from directsam.model import load_model, save_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    meta = {"resolution": RESOLUTION, "threshold": 0.5, "stage": "pretrain", "dataset": "sample"}
    return save_checkpoint(load_model("scratch:tiny"), path, meta)


@pytest.fixture(scope="session")
def images() -> list[np.ndarray]:
    """Three RGB uint8 images of different sizes: blocks of colour plus noise."""
    rng = np.random.default_rng(7)
    out = []
    for h, w in ((48, 80), (70, 50), (64, 64)):
        base = rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)
        big = np.kron(base, np.ones((h // 4 + 1, w // 4 + 1, 1), dtype=np.uint8))[:h, :w]
        noise = rng.integers(0, 40, (h, w, 3), dtype=np.uint8)
        out.append((big // 2 + noise).astype(np.uint8))
    return out
