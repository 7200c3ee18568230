"""Learning-rate schedule: linear warmup, then constant (the seed) or cosine decay.

``lr_at`` is the single definition; :func:`build_scheduler` wraps it in a ``LambdaLR`` so the
scheduler state checkpoints and resumes with the optimizer.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch


def lr_at(
    step: int,
    base_lr: float,
    warmup_steps: int,
    schedule: Literal["constant", "cosine"] = "constant",
    total_steps: int | None = None,
    min_lr_ratio: float = 0.0,
) -> float:
    """Learning rate used for optimizer step ``step`` (0-based).

    Matches Hugging Face's ``get_constant_schedule_with_warmup`` / ``get_cosine_schedule_with_warmup``
    (which the seed's ``Trainer`` used): ``base_lr * step / warmup_steps`` during warmup (so
    step 0 runs at lr 0), then ``base_lr`` (constant) or a half cosine from ``base_lr`` at the
    end of warmup to ``min_lr_ratio * base_lr`` at ``total_steps``.

    Args:
        step: optimizer steps already taken (>= 0).
        base_lr: peak learning rate.
        warmup_steps: length of the linear warmup (0 = none).
        schedule: ``constant`` or ``cosine``.
        total_steps: run length in optimizer steps (required for ``cosine``).
        min_lr_ratio: cosine floor as a fraction of ``base_lr``.

    Raises:
        ValueError: negative step, unknown schedule, or cosine without ``total_steps``.
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if step < warmup_steps:
        return base_lr * step / max(1, warmup_steps)
    if schedule == "constant":
        return base_lr
    if schedule != "cosine":
        raise ValueError(f"unknown schedule {schedule!r}; expected 'constant' or 'cosine'")
    if total_steps is None:
        raise ValueError("the cosine schedule needs total_steps")
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return base_lr * (min_lr_ratio + (1.0 - min_lr_ratio) * cosine)


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    base_lr: float,
    warmup_steps: int,
    schedule: Literal["constant", "cosine"] = "constant",
    total_steps: int | None = None,
    min_lr_ratio: float = 0.0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` whose lr after ``n`` ``scheduler.step()`` calls is ``lr_at(n, ...)``.

    The optimizer's param groups must have been created with ``lr=base_lr``.
    """
    import torch

    def factor(step: int) -> float:
        return lr_at(step, base_lr, warmup_steps, schedule, total_steps, min_lr_ratio) / base_lr

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
