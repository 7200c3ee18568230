"""Step hooks the training tests install (``run_training(cfg, step_hooks=[...])``).

They run in the Ray Train worker processes: Ray pickles a ``functools.partial`` of these
functions by reference, and the workers import this module (the driver's working directory,
the repository root, is on their ``sys.path``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from directsam.training.hooks import StepEvent


def exit_once_at_step(event: StepEvent, *, step: int, rank: int, marker: str) -> None:
    """The worker of ``rank`` exits hard right after step ``step``, as a lost node or an OOM
    kill would look; it writes ``marker`` first, whose presence disarms the fault (so the
    restarted group runs on)."""
    if event.step != step or event.rank != rank or os.path.exists(marker):
        return
    if not event.local_mode:
        import ray.train

        # Wait until the controller has registered every reported checkpoint, so the test
        # knows which one the restarted group must start from.
        ray.train.get_all_reported_checkpoints(timeout_s=120)
    Path(marker).write_text(f"killed at step {event.step}\n")
    os._exit(1)


def record_step(event: StepEvent, *, path: str) -> None:
    """Append the event as one JSON line to ``path``."""
    fields = {
        "step": event.step,
        "rank": event.rank,
        "world_size": event.world_size,
        "local_mode": event.local_mode,
        "final": event.final,
    }
    with open(path, "a") as f:
        f.write(json.dumps(fields) + "\n")
