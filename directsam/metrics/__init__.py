"""Evaluation metrics: effective contour recall + token counts, boundary P/R/F at a tolerance.

Light to import: OpenCV and friends load inside the functions.
"""

from __future__ import annotations

from directsam.metrics.boundary_prf import boundary_prf
from directsam.metrics.contour_recall import aggregate, effective_contour, effective_contour_recall
from directsam.metrics.skeleton import skeletonize

__all__ = [
    "aggregate",
    "boundary_prf",
    "effective_contour",
    "effective_contour_recall",
    "skeletonize",
]
