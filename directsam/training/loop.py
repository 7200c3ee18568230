"""The Ray Train worker body: AMP + AdamW + warmup schedule + clipping + accumulation.

``train_loop_per_worker(config)`` runs on every worker (or in the driver in Train local mode).
It starts from the latest checkpoint when one exists (a re-submitted run, or a worker group
restarted after a failure), else from ``cfg.init``; rank 0 owns checkpoints and MLflow, and
every rank calls ``ray.train.report`` the same number of times (it is a barrier).

The data stream is a sequence of passes over the worker's shard; the run length is counted in
optimizer steps (``max_steps``, else ``epochs`` x steps per epoch), so a resumed run stops at
the same step as an uninterrupted one. Ray Data streams cannot seek: after a restart the pass
in progress starts again from its beginning (with a new shuffle seed).

The worker body reads top to bottom: set up (:func:`worker_env`, :func:`seed_rank`,
:func:`build_parts`, :func:`resume`), then per step :func:`~directsam.training.step.train_step`,
logging (``StepMeter``), :func:`validate`, :func:`report_checkpoint` and the step hooks
(``directsam.training.hooks``; tests install them, the library none).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from directsam.config import from_dict
from directsam.training.config import TrainConfig, config_class
from directsam.training.hooks import StepEvent, StepHook
from directsam.training.step import StepMeter, TrainParts, WorkerEnv, build_optimizer, train_step

if TYPE_CHECKING:
    from directsam.training.config import ValidationConfig


@dataclass
class Runtime:
    """Values the driver resolves once and hands to every worker with the config."""

    total_steps: int
    """Optimizer steps of the whole run."""
    steps_per_epoch: int
    """Optimizer steps per pass over the training split (for the ``epoch`` field)."""
    has_val: bool = False
    """A ``val`` dataset was given to the trainer."""
    local_mode: bool = False
    """Train local mode: the loop persists and finds checkpoints under ``run_dir`` itself."""
    run_dir: str | None = None
    """``<storage_path>/<run_name>`` (local mode)."""
    mlflow_run_id: str | None = None
    """The MLflow run the driver opened (None: tracking off, or the server was unreachable)."""


def rebuild_config(config: dict[str, Any]) -> tuple[TrainConfig, Runtime]:
    """``train_loop_config`` -> (``TrainConfig``, :class:`Runtime`): the worker's first line."""
    cfg_dict = config["cfg"]
    cfg = from_dict(config_class(cfg_dict.get("stage", "pretrain")), cfg_dict)
    return cfg, Runtime(**config["runtime"])


def checkpoint_meta(cfg: TrainConfig) -> dict[str, Any]:
    """``directsam.json`` content besides step/epoch: what the model was trained for."""
    from directsam.config import to_dict

    return {
        "stage": cfg.stage,
        "init": cfg.init,
        "run_name": cfg.run_name(),
        "resolution": cfg.data.resolution,
        "thickness": cfg.data.thickness,
        "threshold": cfg.validation.threshold,
        "dataset": cfg.source.dataset or os.path.basename(cfg.source.input.rstrip("/")),
        "config": to_dict(cfg),
    }


def _start_point(cfg: TrainConfig, rt: Runtime) -> tuple[Any, dict[str, Any] | None, str]:
    """(model, training state or None, where it came from): checkpoint first, else init."""
    import ray.train

    from directsam.model import load_model
    from directsam.training.state import latest_local_checkpoint, load_training_state

    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            return load_model(directory), load_training_state(directory), str(checkpoint.path)
    if rt.local_mode and rt.run_dir:
        latest = latest_local_checkpoint(rt.run_dir)
        if latest is not None:
            return load_model(str(latest)), load_training_state(latest), str(latest)
    return load_model(cfg.init, allow_pickle=cfg.allow_pickle), None, cfg.init


def worker_env(cfg: TrainConfig) -> WorkerEnv:
    """This worker's rank, world size, device and precision (TF32 matmuls on CUDA)."""
    import ray.train
    import ray.train.torch
    import torch

    ctx = ray.train.get_context()
    device = ray.train.torch.get_device()
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return WorkerEnv(
        rank=ctx.get_world_rank(),
        world=ctx.get_world_size(),
        device=device,
        autocast_dtype=cfg.autocast_dtype(device.type),
        channels_last=cfg.optim.channels_last and device.type == "cuda",
    )


def seed_rank(seed: int, rank: int, step: int = 0, generator: Any = None) -> Any:
    """Seed torch's global RNG (dropout, scratch init) and the augmentation generator of a rank.

    Each rank and each resume step gets its own streams; returns the generator (a new one when
    ``generator`` is None).
    """
    import torch

    torch.manual_seed(seed + rank + 1_000_003 * step)
    generator = generator if generator is not None else torch.Generator()
    return generator.manual_seed(seed + 7919 * (rank + 1) + 1_000_003 * step)


def build_parts(
    model: Any, generator: Any, cfg: TrainConfig, rt: Runtime, env: WorkerEnv
) -> TrainParts:
    """The model in train mode, prepared for the worker group (DDP), and a fresh optimizer,
    schedule and scaler (GradScaler on for fp16 autocast only)."""
    import ray.train.torch
    import torch

    from directsam.training.schedule import build_scheduler

    o = cfg.optim
    model.train()
    if env.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model = ray.train.torch.prepare_model(model)
    optimizer = build_optimizer(model, o)
    scheduler = build_scheduler(
        optimizer, o.lr, o.warmup_steps, o.schedule, rt.total_steps, o.min_lr_ratio
    )
    scaler = torch.amp.GradScaler(env.device.type, enabled=env.autocast_dtype == torch.float16)
    return TrainParts(model, optimizer, scheduler, scaler, generator)


def resume(parts: TrainParts, state: dict[str, Any] | None, seed: int, rank: int) -> int:
    """Restore a checkpoint's optimizer / scheduler / scaler state; returns the steps taken.

    Only rank 0's RNG state is saved: rank 0 restores it, the other ranks reseed from the step.
    """
    from directsam.training.state import restore_training_state

    if state is None:
        return 0
    step, _ = restore_training_state(
        state, parts.optimizer, parts.scheduler, parts.scaler, parts.generator, rank == 0
    )
    if rank != 0:
        seed_rank(seed, rank, step, parts.generator)
    return step


def train_batches(
    shard: Any, cfg: TrainConfig, env: WorkerEnv, steps_done: Callable[[], int]
) -> Iterator[dict[str, Any]]:
    """The worker's micro-batches, pass after pass over its shard of the training split.

    Endless; the caller stops taking batches at the end of the run. Each pass shuffles with a
    seed of ``steps_done()`` when it starts (a restarted group replays the pass in progress in
    a new order).

    Raises:
        RuntimeError: a pass gave no full batch (the shard is smaller than one batch).
    """
    o, d = cfg.optim, cfg.data
    while True:
        seen = 0
        for batch in shard.iter_torch_batches(
            batch_size=o.batch_size,
            device=env.device,
            drop_last=True,
            prefetch_batches=d.prefetch_batches,
            local_shuffle_buffer_size=d.shuffle_buffer or None,
            local_shuffle_seed=(o.seed + env.rank + 1_000_003 * steps_done())
            if d.shuffle_buffer
            else None,
            pin_memory=env.device.type == "cuda",
        ):
            seen += 1
            yield batch
        if seen == 0:
            raise RuntimeError(
                f"worker {env.rank}: the training split gave no batch of {o.batch_size} images "
                f"per worker ({env.world} workers); add data or lower --set optim.batch_size"
            )


def validate(model: Any, val_shard: Any, v: ValidationConfig, env: WorkerEnv) -> dict[str, float]:
    """``directsam.training.validation.validate_model`` on the held-out split (rank 0)."""
    from directsam.training.state import unwrap_model
    from directsam.training.validation import validate_model

    return validate_model(
        unwrap_model(model),
        val_shard.iter_torch_batches(batch_size=v.batch_size, device=env.device),
        device=env.device,
        autocast_dtype=env.autocast_dtype,
        threshold=v.threshold,
        tolerance=v.tolerance,
        max_images=v.num_images,
        channels_last=env.channels_last,
    )


def _prune_local(run_dir: Path, keep: int | None) -> None:
    if keep is None:
        return
    found = sorted(p for p in run_dir.glob("checkpoint_*") if p.is_dir())
    for old in found[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def report_checkpoint(
    parts: TrainParts, step: int, metrics: dict[str, Any], cfg: TrainConfig, rt: Runtime, rank: int
) -> None:
    """``ray.train.report`` on every rank (it is a barrier); rank 0 attaches the checkpoint.

    Local mode writes ``checkpoint_<step>`` under ``rt.run_dir`` and prunes it to
    ``checkpoint.num_to_keep`` (Ray does not persist there); otherwise Ray copies the directory
    to the run's storage.
    """
    import ray.train
    from ray.train import Checkpoint

    from directsam.training.state import checkpoint_dir_name, save_training_checkpoint

    if rank != 0:
        ray.train.report(metrics, checkpoint=None)
        return
    name = checkpoint_dir_name(step)

    def save(parent: Path) -> Checkpoint:
        path = save_training_checkpoint(
            parent / name, parts.model, parts.optimizer, parts.scheduler, parts.scaler,
            step=step, epoch=step // max(1, rt.steps_per_epoch), meta=checkpoint_meta(cfg),
            generator=parts.generator,
        )  # fmt: skip
        return Checkpoint.from_directory(path)

    if rt.local_mode:
        assert rt.run_dir is not None
        checkpoint = save(Path(rt.run_dir))
        _prune_local(Path(rt.run_dir), cfg.checkpoint.num_to_keep)
        ray.train.report(metrics, checkpoint=checkpoint)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            ray.train.report(metrics, checkpoint=save(Path(tmp)), checkpoint_dir_name=name)


def _due(step: int, every: int, final: bool) -> bool:
    """Every ``every`` steps and at the end (``every`` 0: never)."""
    return bool(every) and (step % every == 0 or final)


def train_loop_per_worker(config: dict[str, Any]) -> dict[str, Any]:
    """Ray Train worker entry point.

    Args:
        config: ``{"cfg": to_dict(TrainConfig), "runtime": asdict(Runtime)}``, and optionally
            ``"step_hooks"``: callables each given a :class:`StepEvent` after every step.

    Returns:
        ``{"step": final step, "start_step": step it started at}`` (local mode hands it back
        in ``Result.return_value``).
    """
    import ray.train

    from directsam.training.track import open_tracker
    from directsam.training.validation import LOGGED as VAL_LOGGED

    cfg, rt = rebuild_config(config)
    hooks: list[StepHook] = list(config.get("step_hooks", ()))
    o, env = cfg.optim, worker_env(cfg)
    generator = seed_rank(o.seed, env.rank)  # this rank's dropout and augmentation streams
    model, state, origin = _start_point(cfg, rt)
    parts = build_parts(model, generator, cfg, rt, env)
    step = start_step = resume(parts, state, o.seed, env.rank)
    tracker = open_tracker(cfg, env.rank == 0, run_id=rt.mlflow_run_id, role=f"rank{env.rank}")
    if env.rank == 0:
        print(f"[directsam] rank 0/{env.world}: start at {step}/{rt.total_steps} from {origin}")

    # `lambda: step` reads the step reached when a pass starts (that pass's shuffle seed).
    batches = train_batches(ray.train.get_dataset_shard("train"), cfg, env, lambda: step)
    val_shard = ray.train.get_dataset_shard("val") if rt.has_val and env.rank == 0 else None
    images_per_step = env.world * o.batch_size * o.grad_accum
    meter = StepMeter(images_per_step, rt.steps_per_epoch, env.world, step, env.device)
    while step < rt.total_steps:
        losses, lr = train_step(parts, batches, o, env)
        step += 1
        final = step >= rt.total_steps
        meter.add(losses)
        if _due(step, cfg.tracking.log_every_steps, final):
            tracker.log_metrics(meter.interval(step, lr), step)
        with meter.pause():  # validation and checkpoints are not training time
            if val_shard is not None and _due(step, cfg.validation.every_steps, final):
                val = validate(parts.model, val_shard, cfg.validation, env)
                meter.last.update(val)
                tracker.log_metrics({k: val[k] for k in VAL_LOGGED}, step)
            if _due(step, cfg.checkpoint.every_steps, final):
                report_checkpoint(parts, step, meter.report(step, start_step), cfg, rt, env.rank)
        event = StepEvent(step, rt.total_steps, env.rank, env.world, rt.local_mode)
        for hook in hooks:
            hook(event)
    return {"step": step, "start_step": start_step}
