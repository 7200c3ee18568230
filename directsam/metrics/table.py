"""The evaluation metrics, named once: per-image results -> one aggregate per metric.

Every name that reaches MLflow, ``results.csv``, a Tune trial, ``directsam compare``, training
validation (``val_`` + name) or a model card is a :class:`Metric` below; those modules read the
table instead of spelling names, and :func:`aggregate` is the one function that turns per-image
results into them. The names are the MLflow contract (DESIGN.md Conventions): renaming one
breaks comparisons with earlier runs.

A per-image result is a mapping with ``status`` (:data:`SCORED`, :data:`SKIPPED` = no GT left
after the border band, :data:`FAILED` = unreadable input or model error) and, when scored, the
per-image values named by the metrics' ``per_image`` (``recall`` and ``num_tokens`` from
``effective_contour_recall``; ``precision``, ``boundary_recall`` and ``f1`` from
``boundary_prf``). The ``(num_tokens, recall)`` tuple that ``effective_contour_recall`` returns
is accepted as well (``recall < 0``: skipped).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

SCORED = "scored"
SKIPPED = "skipped"
FAILED = "failed"
STATUS = "status"
"""Key of a per-image result that holds its status."""


@dataclass(frozen=True)
class Metric:
    """One aggregate metric: its name, how it is aggregated, and which way is better."""

    name: str
    """MLflow metric key and ``results.csv`` column (training validation adds ``val_``)."""
    aggregation: Literal["mean", "count"]
    """``mean``: mean of ``per_image`` over scored images (NaN when none); ``count``: number of
    images whose status is ``per_image``."""
    per_image: str
    """Per-image value averaged (``mean``) or status counted (``count``)."""
    mode: Literal["max", "min"] | None
    """Better direction (Ray Tune ``mode``); None for image counts, which are not objectives."""
    digits: int
    """Decimals when printed in a table."""
    description: str


MEAN_RECALL = Metric(
    "mean_recall", "mean", "recall", "max", 4,
    "effective contour recall (the seed's metric) at the tolerance, mean over scored images",
)  # fmt: skip
MEAN_NUM_TOKENS = Metric(
    "mean_num_tokens", "mean", "num_tokens", "min", 1,
    "tokens (4-connected components of the skeletonised prediction) per scored image: the cost "
    "axis of the recall-vs-tokens curve, fewer is better at equal recall",
)  # fmt: skip
NUM_IMAGES = Metric("num_images", "count", SCORED, None, 0, "images that entered the means")
NUM_SKIPPED = Metric(
    "num_skipped", "count", SKIPPED, None, 0,
    "images without GT once the border band is removed (or without annotation)",
)  # fmt: skip
NUM_FAILED = Metric(
    "num_failed", "count", FAILED, None, 0, "images that could not be read or scored"
)
MEAN_PRECISION = Metric(
    "mean_precision", "mean", "precision", "max", 4,
    "boundary precision at the tolerance (no border band), mean over scored images",
)  # fmt: skip
MEAN_BOUNDARY_RECALL = Metric(
    "mean_boundary_recall", "mean", "boundary_recall", "max", 4,
    "boundary recall at the tolerance (no border band), mean over scored images",
)  # fmt: skip
MEAN_F1 = Metric(
    "mean_f1", "mean", "f1", "max", 4,
    "boundary F1 at the tolerance (no border band), mean over scored images",
)  # fmt: skip

METRICS: tuple[Metric, ...] = (
    MEAN_RECALL,
    MEAN_NUM_TOKENS,
    NUM_IMAGES,
    NUM_SKIPPED,
    NUM_FAILED,
    MEAN_PRECISION,
    MEAN_BOUNDARY_RECALL,
    MEAN_F1,
)
"""Every evaluation metric, in ``results.csv`` column order."""
NAMES: tuple[str, ...] = tuple(m.name for m in METRICS)
BY_NAME: dict[str, Metric] = {m.name: m for m in METRICS}

OBJECTIVE = MEAN_RECALL
"""What a threshold sweep optimises (Ray Tune ``metric`` and ``mode``)."""
CONTOUR_METRICS: tuple[Metric, ...] = (MEAN_RECALL, MEAN_NUM_TOKENS, NUM_IMAGES, NUM_SKIPPED)
"""The metrics of ``effective_contour_recall`` alone: what training validation computes."""

VALIDATION_PREFIX = "val_"
VALIDATION_LOGGED: tuple[Metric, ...] = (MEAN_RECALL, MEAN_NUM_TOKENS)
"""The validation metrics training logs to MLflow at each validation step."""


def format_value(value: Any, digits: int, width: int = 0) -> str:
    """``value`` right-aligned in ``width`` with ``digits`` decimals (a metric's ``digits``);
    ``-`` for a missing or NaN value (e.g. a mean over no scored image)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"{'-':>{width}}"
    return f"{float(value):>{width}.{digits}f}"


def validation_name(metric: Metric) -> str:
    """The training-validation name of ``metric`` (``val_mean_recall``, ...)."""
    return VALIDATION_PREFIX + metric.name


def aggregate(
    per_image: Iterable[Mapping[str, Any] | tuple[int, float]],
    metrics: Sequence[Metric] = CONTOUR_METRICS,
) -> dict[str, float]:
    """Aggregate per-image results into ``metrics`` (see the module docstring for the input).

    Args:
        per_image: one result per image: a mapping with ``status`` (+ per-image values when
            scored) or an ``effective_contour_recall`` ``(num_tokens, recall)`` tuple.
        metrics: which metrics to compute; the default suits the tuple form, evaluation asks
            for :data:`METRICS`.

    Returns:
        ``{metric.name: float}`` in ``metrics`` order; means are NaN when no image was scored.
    """
    rows = [_as_row(r) for r in per_image]
    scored = [r for r in rows if r[STATUS] == SCORED]
    out: dict[str, float] = {}
    for m in metrics:
        if m.aggregation == "count":
            out[m.name] = float(sum(r[STATUS] == m.per_image for r in rows))
        elif scored:
            out[m.name] = float(np.mean([float(r[m.per_image]) for r in scored]))
        else:
            out[m.name] = float("nan")
    return out


def _as_row(result: Mapping[str, Any] | tuple[int, float]) -> Mapping[str, Any]:
    if isinstance(result, Mapping):
        return result
    num_tokens, recall = result
    if recall < 0:
        return {STATUS: SKIPPED}
    return {STATUS: SCORED, MEAN_RECALL.per_image: recall, MEAN_NUM_TOKENS.per_image: num_tokens}
