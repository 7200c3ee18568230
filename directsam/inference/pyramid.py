"""Pyramid inference: one image -> boundary probabilities averaged over overlapping crops.

Layer ``i`` (1..layers) cuts the image into ``2^i x 2^i`` crops that overlap by ``overlap``
pixels (crop side ``ceil((overlap (n-1) + side) / n)``, ``n = 2^i``). Each crop is predicted at
the model resolution and resized back; its outer ``overlap // 3`` band is zeroed and the next
``overlap // 3`` band halved, because a crop's border is an artificial boundary the model sees
but the image does not have. The global map and each layer's accumulated crop maps are summed
and divided by ``layers + 1``. This follows the DirectSAM authors' later inference code.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

DEFAULT_OVERLAP = 90


def crop_boxes_xyxy(
    height: int, width: int, layer: int, overlap: int = DEFAULT_OVERLAP
) -> list[tuple[int, int, int, int]]:
    """The ``4^layer`` crop boxes ``(x0, y0, x1, y1)`` of one pyramid layer, row-major.

    Raises:
        ValueError: ``layer < 1`` or a side not larger than ``overlap`` (the crops would start
            at negative offsets).
    """
    if layer < 1:
        raise ValueError(f"pyramid layer must be >= 1, got {layer}")
    if min(height, width) <= overlap:
        raise ValueError(
            f"pyramid inference needs both image sides > the {overlap} px crop overlap, "
            f"got {height}x{width}"
        )
    n = 2**layer
    crop_h = math.ceil((overlap * (n - 1) + height) / n)
    crop_w = math.ceil((overlap * (n - 1) + width) / n)
    boxes = []
    for i in range(n):
        y0 = (crop_h - overlap) * i
        for j in range(n):
            x0 = (crop_w - overlap) * j
            boxes.append((x0, y0, min(x0 + crop_w, width), min(y0 + crop_h, height)))
    return boxes


def fade_crop_border(probs: np.ndarray, overlap: int = DEFAULT_OVERLAP) -> np.ndarray:
    """Damp a crop's border in place: outer ``overlap//3`` band -> 0, next band x 0.5.

    The halving is applied per side, so the corners of the halved band get 0.25 (as in the
    reference implementation).

    Args:
        probs: float ``(h, w)`` crop probabilities (modified and returned).
    """
    zero = overlap // 3
    half = 2 * zero
    if half > 0:
        probs[:, :half] *= 0.5
        probs[:, -half:] *= 0.5
        probs[:half, :] *= 0.5
        probs[-half:, :] *= 0.5
    if zero > 0:
        probs[:, :zero] = 0.0
        probs[:, -zero:] = 0.0
        probs[:zero, :] = 0.0
        probs[-zero:, :] = 0.0
    return probs


def _resize_map(prob: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear (align_corners=False) resize of a float map, as the logits upsampling does."""
    if prob.shape == (height, width):
        return prob.astype(np.float32, copy=True)
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(prob, dtype=np.float32))[None, None]
    out = F.interpolate(t, size=(height, width), mode="bilinear", align_corners=False)
    return out[0, 0].numpy()


def pyramid_predict(
    predict_fn: Callable[[Sequence[np.ndarray]], Sequence[np.ndarray] | np.ndarray],
    image: np.ndarray,
    resolution: int,
    layers: int = 1,
    overlap: int = DEFAULT_OVERLAP,
) -> np.ndarray:
    """Average global and crop boundary maps of one image.

    Args:
        predict_fn: maps a list of RGB uint8 ``(h, w, 3)`` images of any size to one float
            probability map per image, either at the image's own size ``(h, w)`` (as
            ``BoundaryPredictor.predict_native``: logits upsampled straight to the crop, like the
            reference) or at ``(resolution, resolution)`` (then resized bilinearly here).
            Called once with the whole image and all crops.
        image: RGB uint8 ``(H, W, 3)``.
        resolution: the model input side ``R`` that ``predict_fn`` returns.
        layers: number of crop layers (0 = global map only).
        overlap: crop overlap in pixels (also sets the faded border, ``overlap // 3``).

    Returns:
        float32 ``(H, W)`` probabilities in [0, 1].
    """
    if layers < 0:
        raise ValueError(f"pyramid layers must be >= 0, got {layers}")
    height, width = image.shape[:2]
    boxes = [(0, 0, width, height)]
    for layer in range(1, layers + 1):
        boxes += crop_boxes_xyxy(height, width, layer, overlap)
    crops = [image] + [image[y0:y1, x0:x1] for x0, y0, x1, y1 in boxes[1:]]
    maps = list(predict_fn(crops))
    if len(maps) != len(crops):
        raise ValueError(f"predict_fn returned {len(maps)} maps for {len(crops)} images")
    fitted = []
    for crop, prob in zip(crops, maps):
        prob = np.asarray(prob, dtype=np.float32)
        if prob.shape not in (crop.shape[:2], (resolution, resolution)):
            raise ValueError(
                f"predict_fn returned a {prob.shape} map for a {crop.shape[:2]} image; expected "
                f"the image size or {(resolution, resolution)}"
            )
        fitted.append(_resize_map(prob, *crop.shape[:2]))
    total = fitted[0]
    for (x0, y0, x1, y1), crop_probs in zip(boxes[1:], fitted[1:]):
        total[y0:y1, x0:x1] += fade_crop_border(crop_probs, overlap)
    total /= layers + 1
    return total
