"""One optimizer step and what is measured around it: micro-batches -> loss -> AdamW update.

``train_step`` is the hot path of the Ray Train loop (``directsam.training.loop``): autocast
forward with the boundary loss, GradScaler-scaled backward over ``grad_accum`` micro-batches
(DDP all-reduces only on the last one), unscale, clip, AdamW, schedule. ``StepMeter`` turns
the steps into the logged ``loss`` / ``lr`` / ``images_per_s`` / ``epoch``. Nothing here needs
Ray: a unit test drives them with a plain model on CPU.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from directsam.training.config import OptimConfig


@dataclass(frozen=True)
class WorkerEnv:
    """Where this worker runs and how it computes (resolved once per worker)."""

    rank: int
    """World rank (0 owns checkpoints, validation and MLflow)."""
    world: int
    """Number of workers (1 in Train local mode)."""
    device: torch.device
    """The worker's device (``ray.train.torch.get_device()``)."""
    autocast_dtype: torch.dtype | None = None
    """bf16/fp16 autocast, or None for plain fp32."""
    channels_last: bool = False
    """Model and inputs in channels_last memory format (CUDA only)."""


@dataclass
class TrainParts:
    """What an optimizer step updates and a checkpoint saves."""

    model: Any
    """The SegFormer, possibly DDP-wrapped (``ray.train.torch.prepare_model``)."""
    optimizer: torch.optim.Optimizer
    scheduler: Any
    """The ``LambdaLR`` of ``directsam.training.schedule.build_scheduler``."""
    scaler: torch.amp.GradScaler
    """Enabled for fp16 autocast only."""
    generator: torch.Generator
    """CPU generator of the photometric augmentation."""


def build_optimizer(model: Any, o: OptimConfig) -> torch.optim.AdamW:
    """AdamW; with weight decay, biases and norm weights (1-D tensors) are not decayed."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    groups: Any = params
    if o.weight_decay > 0:
        groups = [
            {"params": [p for p in params if p.ndim >= 2], "weight_decay": o.weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
        ]
    return torch.optim.AdamW(groups, lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=0.0)


def train_step(
    parts: TrainParts,
    batches: Iterator[Mapping[str, torch.Tensor]],
    o: OptimConfig,
    env: WorkerEnv,
) -> tuple[list[torch.Tensor], float]:
    """One optimizer step over the next ``o.grad_accum`` micro-batches of ``batches``.

    Args:
        parts: model, optimizer, scheduler, scaler and augmentation generator (updated).
        batches: dicts with ``image`` uint8 ``(B, R, R, 3)`` and ``target`` uint8 ``(B, R, R)``
            on ``env.device``; exactly ``o.grad_accum`` are taken.
        o: ``augment_p``, ``grad_accum`` and ``grad_clip`` are read.
        env: device, autocast dtype, channels_last and world size.

    Returns:
        (the float32 scalar loss of each micro-batch, detached, on the device; the learning rate
        this step used).
    """
    import torch

    from directsam.training.data import to_model_input
    from directsam.training.loss import boundary_loss

    model = parts.model
    no_sync = getattr(model, "no_sync", None)
    amp_dtype = env.autocast_dtype or torch.float32
    losses: list[torch.Tensor] = []
    for micro in range(o.grad_accum):
        batch = next(batches)
        pixels = to_model_input(batch["image"], parts.generator, o.augment_p, env.channels_last)
        # DDP all-reduces gradients in backward(): only once per step, on the last micro-batch.
        last = micro == o.grad_accum - 1
        quiet = no_sync() if (not last and env.world > 1 and no_sync) else contextlib.nullcontext()
        with quiet:
            with torch.autocast(
                env.device.type, dtype=amp_dtype, enabled=env.autocast_dtype is not None
            ):
                loss, _ = boundary_loss(model, pixels, batch["target"])
            parts.scaler.scale(loss / o.grad_accum).backward()
        losses.append(loss.detach())
    parts.scaler.unscale_(parts.optimizer)  # clip the true gradients, not the scaled ones
    if o.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), o.grad_clip)
    parts.scaler.step(parts.optimizer)
    parts.scaler.update()
    parts.optimizer.zero_grad(set_to_none=True)
    lr = parts.scheduler.get_last_lr()[0]
    parts.scheduler.step()
    return losses, lr


def mean_over_ranks(value: torch.Tensor, world: int) -> float:
    """The mean of a scalar tensor over the worker group (every rank must call it)."""
    import torch.distributed as dist

    if world > 1 and dist.is_available() and dist.is_initialized():
        value = value.detach().clone()
        dist.all_reduce(value)
        value /= world
    return float(value.item())


@dataclass
class StepMeter:
    """The metrics of each logging interval, and the run's steady-state throughput.

    Every rank keeps one (the loss is averaged over ranks, an all-reduce). Time spent inside
    :meth:`pause` (validation, checkpoints) is left out of ``images_per_s``; the first interval
    (model load, first batches) is left out of ``steady_images_per_s``.
    """

    images_per_step: int
    """Images of one optimizer step over all workers (world x batch x accumulation)."""
    steps_per_epoch: int
    world: int
    step: int
    """The step the interval in progress started at."""
    device: Any = "cpu"
    """Where the losses live (the running sum stays there: no sync per step)."""
    clock: Callable[[], float] = time.perf_counter
    last: dict[str, float] = field(default_factory=dict)
    """The latest interval's metrics, plus the validation metrics reported since."""
    steady_s: float | None = None
    """Busy seconds after the first interval (None until that interval ended)."""
    steady_steps: int = 0

    def __post_init__(self) -> None:
        import torch

        self.loss_sum = torch.zeros((), device=self.device)
        self.loss_n = 0
        self.started = self.clock()
        self.paused_s = 0.0

    def add(self, losses: list[torch.Tensor]) -> None:
        """Count the micro-batch losses of one step."""
        for loss in losses:
            self.loss_sum += loss
            self.loss_n += 1

    def interval(self, step: int, lr: float) -> dict[str, float]:
        """Close the interval at ``step``: ``loss`` (mean over its micro-batches and the ranks),
        ``lr`` (of the last step), ``images_per_s`` and ``epoch``; returns :attr:`last`."""
        now = self.clock()
        busy = max(1e-9, now - self.started - self.paused_s)
        self.last = {
            "loss": mean_over_ranks(self.loss_sum / max(1, self.loss_n), self.world),
            "lr": lr,
            "images_per_s": self.images_per_step * (step - self.step) / busy,
            "epoch": step / max(1, self.steps_per_epoch),
        }
        if self.steady_s is None:  # the first interval includes start-up: skip it
            self.steady_s = 0.0
        else:
            self.steady_s += busy
            self.steady_steps += step - self.step
        self.loss_sum.zero_()
        self.loss_n, self.started, self.step, self.paused_s = 0, now, step, 0.0
        return self.last

    @contextlib.contextmanager
    def pause(self) -> Iterator[None]:
        """Time inside does not count as training time."""
        t0 = self.clock()
        try:
            yield
        finally:
            self.paused_s += self.clock() - t0

    def report(self, step: int, start_step: int) -> dict[str, float]:
        """What ``ray.train.report`` gets with a checkpoint: :attr:`last`, the step, the step
        the worker group started at and, once measured, ``steady_images_per_s``."""
        metrics: dict[str, float] = {**self.last, "step": step, "start_step": start_step}
        if self.steady_s:
            metrics["steady_images_per_s"] = (
                self.images_per_step * self.steady_steps / self.steady_s
            )
        return metrics
