"""Boundary precision / recall / F1 with a pixel tolerance: (gt, pred bool HxW, tol) -> (P, R, F).

A predicted boundary pixel is correct when some GT boundary pixel lies within `tolerance`
pixels (Euclidean distance between pixel centres, <= tolerance), and a GT pixel is recalled when
some predicted pixel lies within `tolerance`. "Within distance r of a set" is computed as a
dilation of the set by the digital disk {(dy, dx): dy^2 + dx^2 <= r^2}, which is exact (integer
arithmetic) and equals thresholding a Euclidean distance transform at r.

Empty inputs give nan-free values: an empty prediction has precision 1 when the GT is empty
too and 0 otherwise; an empty GT has recall 1 when the prediction is empty too and 0
otherwise; F1 = 0 when P + R = 0. So both empty -> (1, 1, 1), one of them empty -> (0, 0, 0).
No border band is applied here (unlike `effective_contour_recall`).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt


def disk_kernel(radius: float) -> npt.NDArray[np.uint8]:
    """uint8 (2R+1)x(2R+1) digital disk, R = floor(radius): 1 where dy^2 + dx^2 <= radius^2."""
    r = math.floor(radius)
    d = np.arange(-r, r + 1)
    return ((d[:, None] ** 2 + d[None, :] ** 2) <= radius * radius).astype(np.uint8)


def boundary_prf(
    gt: npt.NDArray[np.bool_], pred: npt.NDArray[np.bool_], tolerance: float
) -> tuple[float, float, float]:
    """Precision, recall and F1 of a predicted boundary at a pixel tolerance.

    Args:
        gt: bool HxW ground-truth boundary (nonzero = boundary).
        pred: bool HxW predicted boundary, same shape.
        tolerance: matching distance in pixels, finite and >= 0 (0 = exact pixel match).

    Returns:
        (precision, recall, f1), each a float in [0, 1]; edge cases in the module docstring.
    """
    import cv2

    gt = np.asarray(gt)
    pred = np.asarray(pred)
    if gt.ndim != 2 or gt.shape != pred.shape:
        raise ValueError(
            f"gt and pred must be 2-D of the same shape, got {gt.shape} and {pred.shape}"
        )
    tol = float(tolerance)
    if not math.isfinite(tol) or tol < 0:
        raise ValueError(f"tolerance must be a finite number >= 0, got {tolerance!r}")

    gt_u8 = (gt != 0).view(np.uint8)
    pred_u8 = (pred != 0).view(np.uint8)
    n_gt = cv2.countNonZero(gt_u8)
    n_pred = cv2.countNonZero(pred_u8)
    kernel = disk_kernel(tol)
    if n_pred == 0:
        precision = 1.0 if n_gt == 0 else 0.0
    else:
        near_gt = cv2.dilate(gt_u8, kernel)  # cv2 pads with -inf: no matches outside the image
        precision = cv2.countNonZero(cv2.bitwise_and(pred_u8, near_gt)) / n_pred
    if n_gt == 0:
        recall = 1.0 if n_pred == 0 else 0.0
    else:
        near_pred = cv2.dilate(pred_u8, kernel)
        recall = cv2.countNonZero(cv2.bitwise_and(gt_u8, near_pred)) / n_gt
    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return float(precision), float(recall), float(f1)
