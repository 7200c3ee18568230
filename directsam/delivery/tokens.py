"""Images -> subobject tokens as SAM automatic-mask-generator records (COCO RLE), plus label maps.

``tokenize`` is the token API: one batched forward pass per group of images through
:class:`~directsam.inference.BoundaryPredictor`, probabilities at each image's own size,
8-connected components of the pixels below the threshold (optionally denoised), largest first.
Each record has SAM's shape (``segmentation``, ``area``, ``bbox``, ``point_coords``,
``crop_box``) plus ``boundary_confidence``; SAM's ``predicted_iou`` and ``stability_score`` are
left out because DirectSAM has no such estimate (see ``docs/DELIVERY.md``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from directsam.inference.predictor import BoundaryPredictor

DEFAULT_THRESHOLD = 0.5
DEFAULT_RESOLUTION = 1024
_PREDICTORS: dict[tuple[Any, ...], BoundaryPredictor] = {}  # tokenize(checkpoint=spec) reuse


def labels_to_rles(labels: npt.NDArray[np.integer]) -> list[dict[str, Any]]:
    """COCO compressed RLE of every token of a label map, without materialising N masks.

    Args:
        labels: integer ``(H, W)``, 0 = boundary, tokens ``1..N``.

    Returns:
        ``N`` dicts ``{"size": [H, W], "counts": str}``; entry ``i`` encodes ``labels == i + 1``
        exactly as :func:`directsam.data.rle.mask_to_rle` would (same string).
    """
    from pycocotools import mask as mask_utils

    h, w = labels.shape
    n = int(labels.max()) if labels.size else 0
    if n == 0:
        return []
    # Runs of equal labels along the column-major (COCO) order, grouped by label.
    flat = np.asarray(labels).ravel(order="F")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts = np.concatenate(([0], change))
    ends = np.concatenate((change, [flat.size]))
    run_labels = flat[starts]
    order = np.argsort(run_labels, kind="stable")
    bounds = np.searchsorted(run_labels[order], np.arange(1, n + 2))
    out = []
    for k in range(n):
        idx = order[bounds[k] : bounds[k + 1]]
        s, e = starts[idx], ends[idx]
        counts = np.empty(2 * s.size, dtype=np.int64)
        counts[0::2] = s - np.concatenate(([0], e[:-1]))  # zeros before each run
        counts[1::2] = e - s
        if e.size and e[-1] < flat.size:
            counts = np.concatenate((counts, [flat.size - e[-1]]))
        rle = mask_utils.frPyObjects({"size": [h, w], "counts": counts.tolist()}, h, w)
        out.append({"size": [h, w], "counts": rle["counts"].decode("ascii")})
    return out


def contour_confidence(
    labels: npt.NDArray[np.integer], probs: npt.NDArray[np.floating]
) -> np.ndarray:
    """Mean boundary probability on each token's enclosing contour.

    The contour of a token is the set of boundary pixels (label 0) 8-adjacent to it; each is
    counted once per token it touches.

    Args:
        labels: integer ``(H, W)``, 0 = boundary, tokens ``1..N``.
        probs: float ``(H, W)`` boundary probabilities in [0, 1].

    Returns:
        float64 ``(N,)``; NaN for a token with no boundary pixel next to it (a token that only
        meets the image border).
    """
    h, w = labels.shape
    n = int(labels.max()) if labels.size else 0
    idx = np.flatnonzero(labels.ravel() == 0)
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    if idx.size == 0:
        return np.full(n, np.nan)
    padded = np.pad(labels, 1, constant_values=0)
    ys, xs = np.divmod(idx, w)
    keys = []
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                nb = padded[ys + 1 + dy, xs + 1 + dx]
                hit = nb > 0
                keys.append(idx[hit].astype(np.int64) * (n + 1) + nb[hit])
    pairs = np.unique(np.concatenate(keys))
    pix, lab = np.divmod(pairs, n + 1)
    sums = np.bincount(lab, weights=np.asarray(probs, np.float64).ravel()[pix], minlength=n + 1)
    counts = np.bincount(lab, minlength=n + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sums / counts)[1:]


def inner_points_xy(labels: npt.NDArray[np.integer]) -> np.ndarray:
    """float64 ``(N, 2)``: per token the ``(x, y)`` of its pixel farthest from any other label."""
    from scipy import ndimage

    n = int(labels.max()) if labels.size else 0
    if n == 0:
        return np.zeros((0, 2))
    dist = ndimage.distance_transform_edt(np.pad(labels > 0, 1))[1:-1, 1:-1]
    pos = ndimage.maximum_position(dist, labels, index=np.arange(1, n + 1))
    return np.array([(x, y) for y, x in pos], dtype=np.float64).reshape(n, 2)


def labels_to_records(
    labels: npt.NDArray[np.integer], probs: npt.NDArray[np.floating]
) -> list[dict[str, Any]]:
    """SAM-AMG-style records for every token of a label map, largest first.

    Args:
        labels: integer ``(H, W)``, 0 = boundary, tokens ``1..N`` sorted by area descending.
        probs: float ``(H, W)`` boundary probabilities the labels came from.

    Returns:
        ``N`` dicts: ``segmentation`` (COCO RLE at ``H x W``), ``area`` (int pixels), ``bbox``
        (``[x, y, w, h]`` ints), ``boundary_confidence`` (float, see
        :func:`contour_confidence`; None when NaN), ``point_coords`` (``[[x, y]]``, the
        token's innermost pixel: a valid SAM point prompt), ``crop_box`` (``[0, 0, W, H]``).
    """
    from directsam.inference.tokens import token_stats

    h, w = labels.shape
    stats = token_stats(labels)
    conf = contour_confidence(labels, probs)
    points = inner_points_xy(labels)
    records = []
    for i, rle in enumerate(labels_to_rles(labels)):
        c = float(conf[i])
        records.append(
            {
                "segmentation": rle,
                "area": int(stats["area"][i]),
                "bbox": [int(v) for v in stats["bbox_xywh"][i]],
                "boundary_confidence": None if c != c else round(c, 6),
                "point_coords": [[float(points[i, 0]), float(points[i, 1])]],
                "crop_box": [0, 0, int(w), int(h)],
            }
        )
    return records


def probs_to_token_output(
    probs: npt.NDArray[np.floating],
    threshold: float,
    max_tokens: int | None = None,
    min_area: int | None = None,
) -> dict[str, Any]:
    """One image's probabilities -> ``{"masks": records, "label_map": int32 (H, W)}``.

    Without ``max_tokens``/``min_area`` the tokens are exactly the 8-connected components of
    ``probs < threshold``; with either, the label map goes through
    :func:`directsam.inference.denoise_tokens` (small tokens merged, count capped, contour
    redrawn).
    """
    from directsam.inference.denoise import denoise_tokens
    from directsam.inference.tokens import probs_to_tokens

    labels, _ = probs_to_tokens(probs, threshold)
    if max_tokens is not None or min_area is not None:
        labels = denoise_tokens(labels, min_area or 0, max_tokens)
    return {"masks": labels_to_records(labels, probs), "label_map": labels.astype(np.int32)}


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
