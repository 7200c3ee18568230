"""Synthetic photo-like images shared by the inference tests."""

from __future__ import annotations

import numpy as np


def textured_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """RGB uint8 (H, W, 3): smooth colour waves + noise + a flat rectangle (photo-like stats)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack(
        [127 + 100 * np.sin(xx / 17.0 + c) * np.cos(yy / 23.0 - c) for c in range(3)], axis=-1
    )
    image = base + rng.normal(0, 25, (height, width, 3))
    image[height // 3 : height // 2, width // 4 : width // 2] = (250, 10, 30)
    return np.clip(image, 0, 255).astype(np.uint8)
