"""Training checkpoints: a loadable HF directory plus the state needed to resume exactly.

Layout of one checkpoint directory (what ``directsam predict --checkpoint DIR`` loads)::

    config.json, model.safetensors   HF save_pretrained (weights as safetensors)
    directsam.json                   step, epoch, config, resolution, thickness, threshold, lineage
    training_state.pt                optimizer / scheduler / scaler / RNG state (torch.save)

``training_state.pt`` holds only tensors and plain containers, so it loads with
``torch.load(weights_only=True)``: no pickle code runs when resuming from shared storage.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

STATE_FILE = "training_state.pt"


def unwrap_model(model: Any) -> Any:
    """The HF model inside DDP / ``torch.compile`` wrappers."""
    while True:
        inner = getattr(model, "module", None)
        if inner is None:
            inner = getattr(model, "_orig_mod", None)
        if inner is None:
            return model
        model = inner


def rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    """Torch RNG states (CPU, current CUDA device, and ``generator``) as tensors."""
    import torch

    state: dict[str, Any] = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["torch_cuda"] = torch.cuda.get_rng_state()
    if generator is not None:
        state["generator"] = generator.get_state()
    return state


def set_rng_state(state: Mapping[str, Any], generator: torch.Generator | None = None) -> None:
    """Restore what :func:`rng_state` saved (missing entries are left alone)."""
    import torch

    if "torch_cpu" in state:
        torch.set_rng_state(state["torch_cpu"])
    if "torch_cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["torch_cuda"])
    if generator is not None and "generator" in state:
        generator.set_state(state["generator"])


def save_training_checkpoint(
    directory: str | os.PathLike[str],
    model: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: torch.amp.GradScaler,
    *,
    step: int,
    epoch: int,
    meta: Mapping[str, Any],
    generator: torch.Generator | None = None,
) -> Path:
    """Write a resumable checkpoint directory (see module docstring); returns it.

    Args:
        directory: destination; replaced if it exists.
        model: the (possibly DDP-wrapped) SegFormer.
        optimizer, scheduler, scaler: their ``state_dict()`` go to ``training_state.pt``.
        step: optimizer steps taken; ``epoch``: the epoch in progress (0-based).
        meta: extra ``directsam.json`` keys (``config``, ``resolution``, ``thickness`` ...).
        generator: the augmentation generator whose state is saved with the global RNGs.
    """
    import torch

    from directsam.atomic import write_atomic
    from directsam.model.checkpoint import save_checkpoint

    record = {**dict(meta), "step": int(step), "epoch": int(epoch)}
    path = save_checkpoint(unwrap_model(model), directory, record)
    state = {
        "step": int(step),
        "epoch": int(epoch),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": rng_state(generator),
    }
    write_atomic(path / STATE_FILE, lambda fh: torch.save(state, fh))
    return path


def load_training_state(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``training_state.pt`` with ``weights_only=True`` (CPU tensors).

    Raises:
        FileNotFoundError: the directory is a plain model checkpoint without training state.
    """
    import torch

    path = Path(directory) / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{directory} has no {STATE_FILE}: not a resumable checkpoint")
    return torch.load(path, map_location="cpu", weights_only=True)


def restore_training_state(
    state: Mapping[str, Any],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: torch.amp.GradScaler,
    generator: torch.Generator | None = None,
    restore_rng: bool = True,
) -> tuple[int, int]:
    """Load optimizer / scheduler / scaler (and RNG) state; returns ``(step, epoch)``.

    The optimizer must hold the parameters of the model loaded from the same checkpoint (its
    state tensors move to the parameters' device on load).
    """
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    if restore_rng:
        set_rng_state(state.get("rng", {}), generator)
    return int(state["step"]), int(state["epoch"])


def latest_local_checkpoint(run_dir: str | os.PathLike[str]) -> Path | None:
    """The ``checkpoint_<step>`` directory with the highest step under ``run_dir`` (or None).

    Used by Train local mode (``num_workers=0``), where Ray does not persist or restore
    checkpoints: the loop writes them under ``<storage_path>/<run_name>/`` itself.
    """
    root = Path(run_dir)
    if not root.is_dir():
        return None
    best: tuple[int, Path] | None = None
    for child in root.iterdir():
        name = child.name
        if not name.startswith("checkpoint_") or not (child / STATE_FILE).is_file():
            continue
        try:
            step = int(name[len("checkpoint_") :])
        except ValueError:
            continue
        if best is None or step > best[0]:
            best = (step, child)
    return best[1] if best else None


def checkpoint_dir_name(step: int) -> str:
    """``checkpoint_00001000``: sortable, and names the step."""
    return f"checkpoint_{step:08d}"
