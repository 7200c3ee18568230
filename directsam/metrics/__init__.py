"""Evaluation metrics: effective contour recall + token counts, boundary P/R/F at a tolerance,
and the metric table (names, aggregation, direction) every consumer reads.

Light to import: OpenCV and friends load inside the functions.
"""

from __future__ import annotations

from directsam.metrics.boundary_prf import boundary_prf
from directsam.metrics.contour_recall import (
    SKELETON_TOKEN_CONNECTIVITY,
    ContourRecallMaps,
    contour_recall_maps,
    effective_contour,
    effective_contour_recall,
)
from directsam.metrics.skeleton import skeletonize
from directsam.metrics.table import METRICS, Metric, aggregate

__all__ = [
    "METRICS",
    "SKELETON_TOKEN_CONNECTIVITY",
    "ContourRecallMaps",
    "Metric",
    "aggregate",
    "boundary_prf",
    "contour_recall_maps",
    "effective_contour",
    "effective_contour_recall",
    "skeletonize",
]
