"""The loop's pieces without Ray: one optimizer step, the step meter, resume and per-rank seeds."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch

from directsam.model import load_model
from directsam.training.config import PretrainConfig
from directsam.training.loop import resume, seed_rank
from directsam.training.schedule import build_scheduler, lr_at
from directsam.training.state import load_training_state, save_training_checkpoint
from directsam.training.step import StepMeter, TrainParts, WorkerEnv, build_optimizer, train_step

CPU = WorkerEnv(rank=0, world=1, device=torch.device("cpu"))


def _cfg():
    cfg = PretrainConfig()
    o = cfg.optim
    o.lr, o.warmup_steps, o.grad_accum, o.grad_clip, o.augment_p = 1e-2, 2, 2, 0.04, 0.5
    return cfg


def _parts(model, cfg, seed=1):
    o = cfg.optim
    optimizer = build_optimizer(model, o)
    scheduler = build_scheduler(optimizer, o.lr, o.warmup_steps, "constant", 10)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    return TrainParts(model, optimizer, scheduler, scaler, torch.Generator().manual_seed(seed))


def _batches(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        {
            "image": torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8, generator=g),
            "target": (torch.rand(2, 64, 64, generator=g) < 0.2).to(torch.uint8),
        }
        for _ in range(n)
    ]


def test_train_step_equals_a_hand_written_accumulated_step():
    """Two steps of two micro-batches each: the same weights, losses and lrs as plain torch."""
    from directsam.training.data import to_model_input

    cfg = _cfg()
    model = load_model("scratch:tiny").train()
    ref = copy.deepcopy(model)
    start = copy.deepcopy(model.state_dict())
    parts = _parts(model, cfg)
    batches = iter(_batches(5))

    # Reference: accumulate (loss / 2) over two micro-batches, clip, AdamW at lr_at(step).
    ref_opt = torch.optim.AdamW(ref.parameters(), lr=1e-2, weight_decay=0.0)
    ref_sched = build_scheduler(ref_opt, 1e-2, 2, "constant", 10)
    ref_gen = torch.Generator().manual_seed(1)
    ref_batches = iter(_batches(5))

    for step in range(2):
        torch.manual_seed(10 + step)  # dropout / drop-path draws
        losses, lr = train_step(parts, batches, cfg.optim, CPU)

        torch.manual_seed(10 + step)
        ref_losses = []
        for _ in range(2):
            batch = next(ref_batches)
            pixels = to_model_input(batch["image"], ref_gen, 0.5)
            loss = ref(pixel_values=pixels, labels=batch["target"]).loss
            (loss / 2).backward()
            ref_losses.append(loss.detach())
        torch.nn.utils.clip_grad_norm_(ref.parameters(), 0.04)
        ref_opt.step()
        ref_opt.zero_grad(set_to_none=True)
        ref_sched.step()

        assert lr == pytest.approx(lr_at(step, 1e-2, 2))  # the lr the step ran at: 0, then 5e-3
        assert len(losses) == 2 and torch.equal(torch.stack(losses), torch.stack(ref_losses))
        assert all(p.grad is None for p in model.parameters())  # zeroed for the next step
    for (name, a), b in zip(model.state_dict().items(), ref.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    assert not torch.equal(model.state_dict()[name], start[name])  # the second step moved it
    assert torch.equal(parts.generator.get_state(), ref_gen.get_state())
    assert len(list(batches)) == 1  # exactly grad_accum micro-batches per step were taken


class _Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_step_meter_leaves_out_paused_time_and_the_first_interval():
    clock = _Clock()
    meter = StepMeter(images_per_step=8, steps_per_epoch=4, world=1, step=0, clock=clock)
    meter.add([torch.tensor(1.0), torch.tensor(3.0)])
    clock.t += 4.0  # step 1 took 4 s (start-up included)
    first = meter.interval(1, lr=0.1)
    assert first == {"loss": 2.0, "lr": 0.1, "images_per_s": 2.0, "epoch": 0.25}
    assert "steady_images_per_s" not in meter.report(1, 0)  # only the start-up interval so far

    with meter.pause():  # a checkpoint: 10 s that are not training
        clock.t += 10.0
    for loss in (2.0, 4.0):
        meter.add([torch.tensor(loss)])
        clock.t += 1.0
    second = meter.interval(3, lr=0.2)
    assert second == {"loss": 3.0, "lr": 0.2, "images_per_s": 8.0, "epoch": 0.75}
    meter.last.update({"val_mean_recall": 0.5})
    assert meter.report(3, start_step=0) == {
        **second,
        "val_mean_recall": 0.5,
        "step": 3,
        "start_step": 0,
        "steady_images_per_s": 8.0,
    }
    meter.add([torch.tensor(1.0)])
    clock.t += 4.0
    meter.interval(4, lr=0.2)  # 1 step in 4 s: steady = 8 x 3 steps / 6 s
    assert meter.report(4, 0)["steady_images_per_s"] == 4.0
    assert "val_mean_recall" not in meter.last  # each interval starts afresh


def test_seed_rank_at_step_zero_is_the_start_seeding():
    gen = seed_rank(3, rank=1)
    expected = torch.Generator().manual_seed(3 + 7919 * 2)
    assert torch.equal(gen.get_state(), expected.get_state())
    a = torch.rand(4)
    torch.manual_seed(3 + 1)
    assert torch.equal(a, torch.rand(4))
    # Every (rank, step) gets its own streams.
    draws = {
        (r, s): torch.rand(3, generator=seed_rank(3, r, s)).tolist()
        for r, s in itertools.product(range(3), (0, 5))
    }
    assert len({tuple(v) for v in draws.values()}) == 6


def test_resume_restores_rank0_rng_and_reseeds_other_ranks_from_the_step(tmp_path):
    cfg = _cfg()
    model = load_model("scratch:tiny").train()
    parts = _parts(model, cfg, seed=4)
    batches = iter(_batches(6))
    for _ in range(3):
        train_step(parts, batches, cfg.optim, CPU)
    path = save_training_checkpoint(
        tmp_path / "ckpt", model, parts.optimizer, parts.scheduler, parts.scaler,
        step=3, epoch=0, meta={}, generator=parts.generator,
    )  # fmt: skip
    saved_global = torch.get_rng_state()
    state = load_training_state(path)

    assert resume(_parts(load_model(str(path)), cfg), None, seed=7, rank=0) == 0
    rank0 = _parts(load_model(str(path)), cfg, seed=99)
    torch.manual_seed(123)
    assert resume(rank0, state, seed=7, rank=0) == 3
    assert torch.equal(rank0.generator.get_state(), parts.generator.get_state())
    assert torch.equal(torch.get_rng_state(), saved_global)
    assert rank0.scheduler.last_epoch == 3
    assert rank0.scheduler.get_last_lr() == parts.scheduler.get_last_lr()

    rank1 = _parts(load_model(str(path)), cfg, seed=99)
    assert resume(rank1, state, seed=7, rank=1) == 3
    drawn = torch.rand(3)
    expected = seed_rank(7, 1, 3)  # what rank 1 of a fresh group at step 3 starts with
    assert torch.equal(rank1.generator.get_state(), expected.get_state())
    assert torch.equal(drawn, torch.rand(3))
    assert not torch.equal(rank1.generator.get_state(), parts.generator.get_state())
    # ... while its optimizer state is rank 0's, as DDP keeps every rank's replica equal.
    for a, b in zip(rank1.optimizer.state.values(), parts.optimizer.state.values()):
        assert torch.equal(a["exp_avg"], b["exp_avg"]) and int(a["step"]) == 3
