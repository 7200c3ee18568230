"""The boundary loss: Hugging Face's ``num_labels=1`` path of ``SegformerForSemanticSegmentation``.

We do not re-implement the loss: passing ``labels`` to the model makes it upsample the
``(B, 1, R/4, R/4)`` logits bilinearly (align_corners=False) to the label size, apply
``BCEWithLogitsLoss(reduction="none")`` and average over pixels whose label is not
``semantic_loss_ignore_index`` (255). That is exactly what the seed trained with (HF ``Trainer``),
so released checkpoints and ours optimise the same objective. ``tests/training/test_loss.py``
pins it to a plain reference implementation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def boundary_loss(
    model: torch.nn.Module, pixel_values: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward pass with the boundary loss.

    Args:
        model: a ``SegformerForSemanticSegmentation`` with ``num_labels=1`` (or its DDP wrapper).
        pixel_values: float ``(B, 3, R, R)`` normalised images.
        targets: ``(B, H, W)`` boundary labels, 1 = boundary, 0 = not, 255 = ignored (any
            integer or float dtype; usually uint8 with ``H = W = R``).

    Returns:
        (scalar float32 loss, ``(B, 1, R/4, R/4)`` logits).
    """
    out = model(pixel_values=pixel_values, labels=targets)
    return out.loss.float(), out.logits
