"""Token maps drawn over their image: one colour per token, the boundary in white.

What ``directsam predict`` writes as ``<stem>_overlay.png`` and the quickstart notebook shows.
"""

from __future__ import annotations

import numpy as np

BOUNDARY_COLOUR = (255, 255, 255)


def token_palette(num_tokens: int, seed: int = 0) -> np.ndarray:
    """uint8 ``(num_tokens + 1, 3)`` colours; row 0 (boundary) is ``BOUNDARY_COLOUR``."""
    palette = np.random.default_rng(seed).integers(32, 256, size=(num_tokens + 1, 3))
    palette[0] = BOUNDARY_COLOUR
    return palette.astype(np.uint8)


def overlay_tokens(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """RGB uint8 ``(H, W, 3)``: image blended 50/50 with a colour per token, boundary solid."""
    palette = token_palette(int(labels.max()) if labels.size else 0)
    colours = palette[labels]
    blended = (image.astype(np.uint16) + colours) // 2
    out = blended.astype(np.uint8)
    out[labels == 0] = BOUNDARY_COLOUR
    return out
