"""Held-out validation during training: effective contour recall and token count per image.

The numbers are the evaluation's (``directsam.metrics.effective_contour_recall`` at a fixed
threshold and tolerance), computed on the validation split at the training resolution, so a
training curve and a later ``directsam evaluate`` of the same checkpoint agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from directsam.metrics import table

if TYPE_CHECKING:
    import torch

LOGGED = tuple(table.validation_name(m) for m in table.VALIDATION_LOGGED)
"""The validation metrics logged to MLflow at each validation step (``val_mean_recall``,
``val_mean_num_tokens``)."""


def summarize(per_image: list[tuple[int, float]]) -> dict[str, float]:
    """The evaluation's aggregate (``table.CONTOUR_METRICS``) with ``val_`` names.

    Args:
        per_image: ``(num_tokens, recall)`` per image as ``effective_contour_recall`` returns
            it; ``(-1, -1.0)`` (empty ground truth after the border band) is skipped.

    Returns:
        ``val_mean_recall``, ``val_mean_num_tokens`` (NaN when every image was skipped),
        ``val_num_images`` (counted) and ``val_num_skipped``, all floats.
    """
    values = table.aggregate(per_image, table.CONTOUR_METRICS)
    return {table.validation_name(m): values[m.name] for m in table.CONTOUR_METRICS}


def probs_from_logits(logits: torch.Tensor, size: int) -> torch.Tensor:
    """``(B, 1, h, w)`` logits -> float32 ``(B, size, size)`` probabilities.

    Upsample before the sigmoid, as the loss (and the predictor) do.
    """
    import torch.nn.functional as F

    up = F.interpolate(logits.float(), size=(size, size), mode="bilinear", align_corners=False)
    return up[:, 0].sigmoid()


def validate_model(
    model: torch.nn.Module,
    batches: Iterable[Mapping[str, Any]],
    *,
    device: torch.device,
    autocast_dtype: torch.dtype | None,
    threshold: float,
    tolerance: int,
    max_images: int,
    channels_last: bool = False,
) -> dict[str, float]:
    """Run the model over validation batches and summarise the metric.

    Args:
        model: the boundary SegFormer (DDP wrappers are fine; only this process runs it).
        batches: dicts with ``image`` uint8 ``(B, R, R, 3)`` and ``target`` uint8 ``(B, R, R)``
            (tensors or arrays), e.g. ``iter_torch_batches`` of the validation dataset.
        device: where the model lives; ``autocast_dtype``: bf16/fp16 or None (fp32).
        threshold: boundary probability threshold; ``tolerance``: metric tolerance (px).
        max_images: stop after this many images.

    Returns:
        :func:`summarize` of the per-image ``(num_tokens, recall)``.
    """
    import torch

    from directsam.metrics import effective_contour_recall
    from directsam.training.data import to_model_input

    was_training = model.training
    model.eval()
    per_image: list[tuple[int, float]] = []
    try:
        with torch.no_grad():
            for batch in batches:
                images = torch.as_tensor(batch["image"]).to(device, non_blocking=True)
                targets = np.asarray(torch.as_tensor(batch["target"]).cpu())
                pixels = to_model_input(images, channels_last=channels_last)
                with torch.autocast(
                    device.type,
                    dtype=autocast_dtype or torch.float32,
                    enabled=autocast_dtype is not None,
                ):
                    logits = model(pixel_values=pixels).logits
                probs = probs_from_logits(logits, images.shape[1]).cpu().numpy()
                for prob, target in zip(probs, targets):
                    gt = target == 1  # 255 (ignore) counts as no boundary
                    per_image.append(effective_contour_recall(gt, prob >= threshold, tolerance))
                    if len(per_image) >= max_images:
                        return summarize(per_image)
    finally:
        model.train(was_training)
    return summarize(per_image)
