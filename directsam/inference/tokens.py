"""Boundary probabilities -> tokens: 8-connected regions of non-boundary pixels, largest first.

A token ("subobject") is a connected component of the pixels whose boundary probability is
below the threshold. Labels are ``int32``: 0 marks boundary pixels, tokens are ``1..N`` sorted
by area (largest first; equal areas keep raster order of their first pixel).
"""

from __future__ import annotations

import numpy as np


def relabel_by_area(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Renumber the non-zero labels of a map ``1..N`` by area, largest first.

    Labels that do not occur are dropped; ties keep the order of the old label value.

    Args:
        labels: non-negative integer ``(H, W)``; 0 is kept as 0.

    Returns:
        (int32 ``(H, W)`` labels, ``N``).
    """
    labels = np.asarray(labels)
    if labels.size == 0:
        return labels.astype(np.int32), 0
    areas = np.bincount(labels.ravel(), minlength=1)
    areas[0] = 0
    present = np.flatnonzero(areas)
    # Stable sort on -area keeps ascending old labels among equal areas.
    order = present[np.argsort(-areas[present], kind="stable")]
    lut = np.zeros(areas.shape[0], dtype=np.int32)
    lut[order] = np.arange(1, order.size + 1, dtype=np.int32)
    return lut[labels], int(order.size)


def probs_to_tokens(probs: np.ndarray, threshold: float) -> tuple[np.ndarray, int]:
    """Threshold boundary probabilities and label the regions between boundaries.

    Args:
        probs: float ``(H, W)`` boundary probabilities in [0, 1].
        threshold: pixels with ``probs >= threshold`` are boundary.

    Returns:
        (labels int32 ``(H, W)``: 0 = boundary, ``1..N`` = tokens by area descending
        (ties: first pixel in raster order), ``N``).
    """
    import cv2

    if probs.ndim != 2:
        raise ValueError(f"expected (H, W) probabilities, got shape {probs.shape}")
    inside = (np.asarray(probs) < threshold).astype(np.uint8)
    # cv2 numbers components in raster order of their first pixel: a deterministic tie-break.
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        inside, connectivity=8, ltype=cv2.CV_32S
    )
    areas = stats[:, cv2.CC_STAT_AREA].astype(np.int64)
    areas[0] = 0  # background component of cv2 = our boundary pixels
    order = 1 + np.argsort(-areas[1:], kind="stable")
    lut = np.zeros(count, dtype=np.int32)
    lut[order] = np.arange(1, count, dtype=np.int32)
    return lut[labels], count - 1


def labels_to_masks(labels: np.ndarray) -> np.ndarray:
    """One boolean mask per token.

    Args:
        labels: integer ``(H, W)``, 0 = boundary, tokens ``1..N``.

    Returns:
        bool ``(N, H, W)``; mask ``i`` is ``labels == i + 1``.
    """
    n = int(labels.max()) if labels.size else 0
    return labels[None, :, :] == np.arange(1, n + 1, dtype=labels.dtype)[:, None, None]


def token_stats(labels: np.ndarray, probs: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-token area, bounding box and mean boundary probability.

    Args:
        labels: integer ``(H, W)``, 0 = boundary, tokens ``1..N``.
        probs: optional float ``(H, W)`` boundary probabilities.

    Returns:
        ``{"area": int64 (N,), "bbox_xywh": int32 (N, 4), "mean_prob": float32 (N,)}``
        (``mean_prob`` only when ``probs`` is given; NaN for labels that do not occur;
        an absent label also gets area 0 and bbox ``[0, 0, 0, 0]``).
    """
    from scipy import ndimage

    n = int(labels.max()) if labels.size else 0
    flat = labels.ravel()
    area = np.bincount(flat, minlength=n + 1)[1:].astype(np.int64)
    bbox = np.zeros((n, 4), dtype=np.int32)
    for i, sl in enumerate(ndimage.find_objects(labels.astype(np.int32, copy=False), n)):
        if sl is not None:
            ys, xs = sl
            bbox[i] = (xs.start, ys.start, xs.stop - xs.start, ys.stop - ys.start)
    out = {"area": area, "bbox_xywh": bbox}
    if probs is not None:
        sums = np.bincount(flat, weights=np.asarray(probs, np.float64).ravel(), minlength=n + 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out["mean_prob"] = (sums[1:] / area).astype(np.float32)
    return out
