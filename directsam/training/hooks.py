"""Step hooks: callables every training worker calls after each optimizer step.

A hook gets a :class:`StepEvent` after the step's logging, validation and checkpoint (so a
checkpoint due at that step has been reported). ``run_training(cfg, step_hooks=[...])`` ships
the hooks to the workers inside ``train_loop_config``, pickled as Ray pickles the loop itself:
a module-level function (or a ``functools.partial`` of one) must be importable on the workers,
a closure travels by value. The library installs none; tests use them to inject faults (kill
a worker at a given step) and to observe the loop, without test code in the loop.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class StepEvent:
    """Where a worker is: right after optimizer step ``step``."""

    step: int
    """Optimizer steps taken (1 after the first step)."""
    total_steps: int
    """Steps of the whole run."""
    rank: int
    """World rank of the worker calling the hook."""
    world_size: int
    """Workers in the group (1 in Train local mode)."""
    local_mode: bool
    """Train local mode (``num_workers=0``): the loop runs in the driver process."""

    @property
    def final(self) -> bool:
        """The last step of the run."""
        return self.step >= self.total_steps


class StepHook(Protocol):
    """``hook(event)``; its return value is ignored, an exception fails the worker."""

    def __call__(self, event: StepEvent) -> object: ...


def check_hooks(hooks: Iterable[object]) -> list[StepHook]:
    """The hooks as a list; refuses anything that is not callable.

    Raises:
        TypeError: naming the first entry that is not callable.
    """
    out = list(hooks)
    for i, hook in enumerate(out):
        if not callable(hook):
            raise TypeError(f"step_hooks[{i}] is not callable: {hook!r}")
    return out  # type: ignore[return-value]
