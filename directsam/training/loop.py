"""The Ray Train worker body: AMP + AdamW + warmup schedule + clipping + accumulation.

``train_loop_per_worker(config)`` runs on every worker (or in the driver in Train local mode).
It starts from the latest checkpoint when one exists (a re-submitted run, or a worker group
restarted after a failure), else from ``cfg.init``; rank 0 owns checkpoints and MLflow, and
every rank calls ``ray.train.report`` the same number of times (it is a barrier).

The data stream is a sequence of passes over the worker's shard; the run length is counted in
optimizer steps (``max_steps``, else ``epochs`` x steps per epoch), so a resumed run stops at
the same step as an uninterrupted one. Ray Data streams cannot seek: after a restart the pass
in progress starts again from its beginning (with a new shuffle seed).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from directsam.config import from_dict
from directsam.training.config import TrainConfig, config_class


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
        "dataset": cfg.data.dataset or os.path.basename(cfg.data.input.rstrip("/")),
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


def _optimizer(model: Any, cfg: TrainConfig) -> Any:
    """AdamW; with weight decay, biases and norm weights (1-D tensors) are not decayed."""
    import torch

    o = cfg.optim
    params = [p for p in model.parameters() if p.requires_grad]
    groups: Any = params
    if o.weight_decay > 0:
        groups = [
            {"params": [p for p in params if p.ndim >= 2], "weight_decay": o.weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
        ]
    return torch.optim.AdamW(groups, lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=0.0)


def _prune_local(run_dir: Path, keep: int | None) -> None:
    if keep is None:
        return
    found = sorted(p for p in run_dir.glob("checkpoint_*") if p.is_dir())
    for old in found[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def _mean_over_ranks(value: Any, world: int) -> float:
    import torch.distributed as dist

    if world > 1 and dist.is_available() and dist.is_initialized():
        value = value.detach().clone()
        dist.all_reduce(value)
        value /= world
    return float(value.item())


def train_loop_per_worker(config: dict[str, Any]) -> dict[str, Any]:
    """Ray Train worker entry point.

    Args:
        config: ``{"cfg": to_dict(TrainConfig), "runtime": asdict(Runtime)}``.

    Returns:
        ``{"step": final step, "start_step": step it started at}`` (local mode hands it back
        in ``Result.return_value``).
    """
    import ray.train
    import ray.train.torch
    import torch
    from ray.train import Checkpoint

    from directsam.training.data import to_model_input
    from directsam.training.loss import boundary_loss
    from directsam.training.schedule import build_scheduler
    from directsam.training.state import (
        checkpoint_dir_name,
        restore_training_state,
        save_training_checkpoint,
        unwrap_model,
    )
    from directsam.training.track import open_tracker
    from directsam.training.validation import LOGGED as VAL_LOGGED
    from directsam.training.validation import validate_model

    cfg, rt = rebuild_config(config)
    o = cfg.optim
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(o.seed + rank)
    generator = torch.Generator().manual_seed(o.seed + 7919 * (rank + 1))
    channels_last = o.channels_last and device.type == "cuda"

    model, state, origin = _start_point(cfg, rt)
    model.train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model = ray.train.torch.prepare_model(model)
    optimizer = _optimizer(model, cfg)
    scheduler = build_scheduler(
        optimizer, o.lr, o.warmup_steps, o.schedule, rt.total_steps, o.min_lr_ratio
    )
    autocast_dtype = cfg.autocast_dtype(device.type)
    scaler = torch.amp.GradScaler(device.type, enabled=autocast_dtype == torch.float16)
    step = 0
    if state is not None:
        step, _ = restore_training_state(
            state, optimizer, scheduler, scaler, generator, restore_rng=rank == 0
        )
        if rank != 0:  # only rank 0's RNG state is saved: derive the others from the step
            torch.manual_seed(o.seed + rank + 1_000_003 * step)
            generator.manual_seed(o.seed + 7919 * (rank + 1) + 1_000_003 * step)
    start_step = step
    tracker = open_tracker(cfg, enabled=rank == 0, run_id=rt.mlflow_run_id, role=f"rank{rank}")
    if rank == 0:
        print(f"[directsam] rank 0/{world}: start at step {step}/{rt.total_steps} from {origin}")

    shard = ray.train.get_dataset_shard("train")
    val_shard = ray.train.get_dataset_shard("val") if rt.has_val and rank == 0 else None
    imgs_per_step = world * o.batch_size * o.grad_accum
    amp = dict(device_type=device.type, dtype=autocast_dtype or torch.float32)
    amp["enabled"] = autocast_dtype is not None
    run_dir = Path(rt.run_dir) if rt.run_dir else None
    micro, loss_sum, loss_n = 0, torch.zeros((), device=device), 0
    t_mark, step_mark, paused = time.perf_counter(), step, 0.0
    steady: dict[str, float] = {}
    last: dict[str, float] = {}
    while step < rt.total_steps:
        batches = shard.iter_torch_batches(
            batch_size=o.batch_size,
            device=device,
            drop_last=True,
            prefetch_batches=cfg.data.prefetch_batches,
            local_shuffle_buffer_size=cfg.data.shuffle_buffer or None,
            local_shuffle_seed=(o.seed + rank + 1_000_003 * step)
            if cfg.data.shuffle_buffer
            else None,
            pin_memory=device.type == "cuda",
        )
        seen = 0
        for batch in batches:
            seen += 1
            pixels = to_model_input(batch["image"], generator, o.augment_p, channels_last)
            sync = (micro + 1) % o.grad_accum == 0
            no_sync = getattr(model, "no_sync", None)
            quiet = no_sync() if (not sync and world > 1 and no_sync) else contextlib.nullcontext()
            with quiet:
                with torch.autocast(**amp):
                    loss, _ = boundary_loss(model, pixels, batch["target"])
                scaler.scale(loss / o.grad_accum).backward()
            loss_sum += loss.detach()
            loss_n += 1
            micro += 1
            if not sync:
                continue
            scaler.unscale_(optimizer)
            if o.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), o.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            lr = scheduler.get_last_lr()[0]
            scheduler.step()
            step += 1
            final = step >= rt.total_steps

            if step % cfg.tracking.log_every_steps == 0 or final:
                now = time.perf_counter()
                busy = max(1e-9, now - t_mark - paused)
                last = {
                    "loss": _mean_over_ranks(loss_sum / max(1, loss_n), world),
                    "lr": lr,
                    "images_per_s": imgs_per_step * (step - step_mark) / busy,
                    "epoch": step / max(1, rt.steps_per_epoch),
                }
                # The first interval includes start-up (model load, first batches): skip it.
                if "t" not in steady:
                    steady.update(t=0.0, steps=0.0)
                else:
                    steady["t"] += busy
                    steady["steps"] += step - step_mark
                tracker.log_metrics(last, step)
                loss_sum.zero_()
                loss_n, t_mark, step_mark, paused = 0, now, step, 0.0

            t_pause = time.perf_counter()
            val_every = cfg.validation.every_steps
            if val_shard is not None and val_every and (step % val_every == 0 or final):
                v = cfg.validation
                val = validate_model(
                    unwrap_model(model),
                    val_shard.iter_torch_batches(batch_size=v.batch_size, device=device),
                    device=device,
                    autocast_dtype=autocast_dtype,
                    threshold=v.threshold,
                    tolerance=v.tolerance,
                    max_images=v.num_images,
                    channels_last=channels_last,
                )
                last.update(val)
                tracker.log_metrics({k: val[k] for k in VAL_LOGGED}, step)

            if step % cfg.checkpoint.every_steps == 0 or final:
                metrics = {**last, "step": step, "start_step": start_step}
                if steady.get("t"):
                    metrics["steady_images_per_s"] = imgs_per_step * steady["steps"] / steady["t"]
                name = checkpoint_dir_name(step)
                epoch = step // max(1, rt.steps_per_epoch)
                meta = checkpoint_meta(cfg)
                if rank != 0:
                    ray.train.report(metrics, checkpoint=None)
                elif rt.local_mode:
                    assert run_dir is not None
                    path = save_training_checkpoint(
                        run_dir / name, model, optimizer, scheduler, scaler,
                        step=step, epoch=epoch, meta=meta, generator=generator,
                    )  # fmt: skip
                    _prune_local(run_dir, cfg.checkpoint.num_to_keep)
                    ray.train.report(metrics, checkpoint=Checkpoint.from_directory(path))
                else:
                    with tempfile.TemporaryDirectory() as tmp:
                        path = save_training_checkpoint(
                            Path(tmp) / name, model, optimizer, scheduler, scaler,
                            step=step, epoch=epoch, meta=meta, generator=generator,
                        )  # fmt: skip
                        ray.train.report(
                            metrics, checkpoint=Checkpoint.from_directory(path),
                            checkpoint_dir_name=name,
                        )  # fmt: skip
            paused += time.perf_counter() - t_pause

            d = cfg.debug
            if d.fail_at_step == step and rank == d.fail_rank and d.fail_marker:
                if not os.path.exists(d.fail_marker):
                    if not rt.local_mode:
                        # Wait until the controller has registered every reported checkpoint,
                        # so the test knows which one the restarted group must start from.
                        ray.train.get_all_reported_checkpoints(timeout_s=120)
                    Path(d.fail_marker).write_text(f"killed at step {step}\n")
                    os._exit(1)  # a hard crash, as a lost node or OOM kill would look
            if final:
                break
        if seen == 0:
            raise RuntimeError(
                f"worker {rank}: the training split gave no batch of {o.batch_size} images per "
                f"worker ({world} workers); add data or lower --set optim.batch_size"
            )
    return {"step": step, "start_step": start_step}
