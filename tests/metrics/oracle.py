"""Plain reference implementations of the metrics: the definitions, written as literally as possible.

`oracle_contour_recall` is the seed's effective contour recall as a per-token loop (one full-image
dilate/erode per token). It is slow on purpose: `directsam.metrics` must return exactly its numbers.
`oracle_boundary_prf` is a brute-force nearest-pixel search for the tolerance-based boundary F.
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.morphology import skeletonize


def oracle_contour_maps(gt: np.ndarray, pred: np.ndarray, tolerance: int = 5) -> dict:
    """Steps 1 and 3-6 of the definition, per-token loop, as maps.

    Returns:
        {"gt_inner": GT with the border band off, "skeleton", "contour" (effective contour),
        "covered" (contour dilated by the t x t ellipse): bool HxW; "num_tokens": int}.
    """
    t = tolerance
    gt = gt.astype(bool).copy()
    pred = pred.astype(bool).copy()
    # 1. border band: GT off, prediction on.
    gt[:t, :] = gt[-t:, :] = gt[:, :t] = gt[:, -t:] = False
    pred[:t, :] = pred[-t:, :] = pred[:, :t] = pred[:, -t:] = True
    # 3. skeleton; 4. tokens = 4-connected components of the non-skeleton pixels.
    skeleton = skeletonize(pred)
    num_labels, label_map = cv2.connectedComponents(1 - skeleton.astype(np.uint8), connectivity=4)
    # 5. effective contour = union over tokens of dilate(token) minus erode(dilate(token)).
    effective = np.zeros(gt.shape, dtype=np.uint8)
    kernel3 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    for label_id in range(1, num_labels):
        mask = (label_map == label_id).astype(np.uint8)
        dilated = cv2.dilate(mask, kernel3, iterations=1)
        eroded = cv2.erode(dilated, kernel3, iterations=1)
        contour = dilated - eroded
        effective[contour > 0] = 1
    # 6. tolerance.
    kernel_t = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (t, t))
    effective_dilated = cv2.dilate(effective, kernel_t, iterations=1)
    return {
        "gt_inner": gt,
        "skeleton": skeleton.astype(bool),
        "contour": effective.astype(bool),
        "covered": effective_dilated.astype(bool),
        "num_tokens": num_labels - 1,
    }


def oracle_contour_recall(
    gt: np.ndarray, pred: np.ndarray, tolerance: int = 5
) -> tuple[int, float]:
    """Effective contour recall, per-token loop.

    Args:
        gt: bool HxW ground-truth boundary (not modified).
        pred: bool HxW predicted boundary (not modified).
        tolerance: border band width and matching tolerance in pixels (>= 1).

    Returns:
        (num_tokens, recall); (-1, -1.0) when GT is empty after the border band is removed.
    """
    t = tolerance
    inner = gt.astype(bool).copy()
    inner[:t, :] = inner[-t:, :] = inner[:, :t] = inner[:, -t:] = False
    # 2. nothing left to recall: the image is skipped.
    if np.sum(inner) == 0:
        return -1, -1.0
    maps = oracle_contour_maps(gt, pred, tolerance)
    # 7. recall.
    gt_inner = maps["gt_inner"]
    recall = np.sum(np.logical_and(gt_inner, maps["covered"])) / np.sum(gt_inner)
    return maps["num_tokens"], float(recall)


def oracle_effective_contour(labels: np.ndarray) -> np.ndarray:
    """bool HxW union over labels k > 0 of dilate(L == k) minus erode(dilate(L == k)), per label."""
    effective = np.zeros(labels.shape, dtype=np.uint8)
    kernel3 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    for label_id in np.unique(labels):
        if label_id <= 0:
            continue
        mask = (labels == label_id).astype(np.uint8)
        dilated = cv2.dilate(mask, kernel3, iterations=1)
        eroded = cv2.erode(dilated, kernel3, iterations=1)
        effective[(dilated - eroded) > 0] = 1
    return effective.astype(bool)


def _within(src: np.ndarray, dst: np.ndarray, tolerance: float) -> np.ndarray:
    """bool per `src` pixel (in np.nonzero order): some `dst` pixel lies within `tolerance` px."""
    src_yx = np.argwhere(src).astype(np.int64)
    dst_yx = np.argwhere(dst).astype(np.int64)
    if len(src_yx) == 0 or len(dst_yx) == 0:
        return np.zeros(len(src_yx), dtype=bool)
    d2 = ((src_yx[:, None, :] - dst_yx[None, :, :]) ** 2).sum(-1)
    return (d2 <= tolerance * tolerance).any(axis=1)


def oracle_boundary_prf(
    gt: np.ndarray, pred: np.ndarray, tolerance: float
) -> tuple[float, float, float]:
    """Boundary precision / recall / F1 by exhaustive nearest-pixel search (small images only)."""
    gt = gt.astype(bool)
    pred = pred.astype(bool)
    n_gt, n_pred = int(gt.sum()), int(pred.sum())
    if n_pred == 0:
        precision = 1.0 if n_gt == 0 else 0.0
    else:
        precision = int(_within(pred, gt, tolerance).sum()) / n_pred
    if n_gt == 0:
        recall = 1.0 if n_pred == 0 else 0.0
    else:
        recall = int(_within(gt, pred, tolerance).sum()) / n_gt
    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return precision, recall, f1
