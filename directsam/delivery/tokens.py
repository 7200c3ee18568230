"""Images -> subobject tokens as SAM automatic-mask-generator records (COCO RLE), plus label maps.

``tokenize`` is the token API: one batched forward pass per group of images through
:class:`~directsam.inference.BoundaryPredictor`, probabilities at each image's own size, then
:func:`directsam.inference.tokens.probs_to_token_output` (8-connected components of the pixels
below the threshold, optionally denoised, largest first). Each record has SAM's shape
(``segmentation``, ``area``, ``bbox``, ``point_coords``, ``crop_box``) plus
``boundary_confidence``; SAM's ``predicted_iou`` and ``stability_score`` are left out because
DirectSAM has no such estimate (see ``docs/DELIVERY.md``). The label-map helpers live in
:mod:`directsam.inference.tokens`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

# Owned by inference.tokens; labels_to_records / labels_to_rles stay importable from here.
from directsam.inference.tokens import (  # noqa: F401
    labels_to_records,
    labels_to_rles,
    probs_to_token_output,
)
from directsam.model.spec import DEFAULT_RESOLUTION, DEFAULT_THRESHOLD

if TYPE_CHECKING:
    from directsam.inference.predictor import BoundaryPredictor

_PREDICTORS: dict[tuple[Any, ...], BoundaryPredictor] = {}  # tokenize(checkpoint=spec) reuse


def as_rgb(image: Any, name: str = "<image>") -> np.ndarray:
    """An image given as a path, bytes, PIL image or array -> RGB uint8 ``(H, W, 3)``."""
    from directsam.data.decode import decode_image

    if isinstance(image, (str, os.PathLike)):
        return decode_image(Path(image).read_bytes(), name=str(image))
    if isinstance(image, (bytes, bytearray, memoryview)):
        return decode_image(bytes(image), name=name)
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"{name}: expected RGB uint8 (H, W, 3), got {arr.dtype} {arr.shape}")
    return np.ascontiguousarray(arr[:, :, :3])


def get_predictor(
    checkpoint: str,
    resolution: int | None = None,
    device: str = "auto",
    dtype: str = "auto",
) -> BoundaryPredictor:
    """A cached :class:`BoundaryPredictor` (resolution default: the checkpoint's, else 1024)."""
    from directsam.inference.predictor import BoundaryPredictor
    from directsam.model.spec import read_checkpoint_meta

    if resolution is None:
        resolution = int(read_checkpoint_meta(checkpoint).get("resolution") or DEFAULT_RESOLUTION)
    key = (checkpoint, int(resolution), device, dtype)
    if key not in _PREDICTORS:
        _PREDICTORS.clear()  # keep at most one model resident
        _PREDICTORS[key] = BoundaryPredictor(
            checkpoint, device=device, dtype=dtype, resolution=resolution
        )
    return _PREDICTORS[key]


def tokenize(
    images: Any,
    checkpoint: str | BoundaryPredictor = "chendelong/DirectSAM-1800px-0424",
    threshold: float | None = None,
    max_tokens: int | None = None,
    min_area: int | None = None,
    resolution: int | None = None,
    *,
    device: str = "auto",
    dtype: str = "auto",
    batch_size: int = 8,
) -> list[dict[str, Any]]:
    """Cut images into subobject tokens in one forward pass each (batched).

    Args:
        images: one image or a sequence of them; each an RGB uint8 ``(H, W, 3)`` array (or
            ``(H, W)`` grey), a file path, encoded bytes or a PIL image.
        checkpoint: checkpoint spec (hub id, directory, ``scratch:*``, ``models:/NAME/VERSION``)
            or a ready :class:`BoundaryPredictor` (its resolution is used).
        threshold: boundary threshold in (0, 1); default the checkpoint's ``directsam.json``,
            else 0.5.
        max_tokens: denoise: keep at most this many tokens (smallest merged into neighbours).
        min_area: denoise: merge tokens smaller than this many pixels.
        resolution: model input side; default the checkpoint's, else 1024.
        device, dtype: as for :class:`BoundaryPredictor` (ignored for a given predictor).
        batch_size: images per forward pass.

    Returns:
        One dict per image: ``{"masks": [record, ...], "label_map": int32 (H, W)}`` where
        records follow SAM's automatic mask generator (see :func:`labels_to_records`) and
        ``label_map`` has 0 on boundaries and ``i + 1`` on the pixels of ``masks[i]``.

    Raises:
        ValueError: bad threshold/limits or an image that is not RGB uint8.
    """
    from directsam.inference.predictor import BoundaryPredictor

    if threshold is not None and not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    if max_tokens is not None and max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    if min_area is not None and min_area < 0:
        raise ValueError(f"min_area must be >= 0, got {min_area}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    single = not isinstance(images, (list, tuple)) and not (
        isinstance(images, np.ndarray) and images.ndim == 4
    )
    items: Sequence[Any] = [images] if single else images
    if isinstance(checkpoint, BoundaryPredictor):
        predictor = checkpoint
    else:
        predictor = get_predictor(checkpoint, resolution, device, dtype)
    if threshold is None:
        threshold = float(predictor.meta.get("threshold") or DEFAULT_THRESHOLD)
    out = []
    for start in range(0, len(items), batch_size):
        chunk = [
            as_rgb(im, f"image {start + i}")
            for i, im in enumerate(items[start : start + batch_size])
        ]
        for probs in predictor.predict_native(chunk):
            out.append(probs_to_token_output(probs, threshold, max_tokens, min_area))
    return out
