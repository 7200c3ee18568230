"""Checkpoints restore the exact optimizer / scheduler / scaler / RNG state (no Ray)."""

from __future__ import annotations

import json

import torch

from directsam.model import load_model
from directsam.training.config import PretrainConfig
from directsam.training.schedule import build_scheduler
from directsam.training.state import (
    STATE_FILE,
    latest_local_checkpoint,
    load_training_state,
    restore_training_state,
    save_training_checkpoint,
)
from directsam.training.step import build_optimizer


def _setup(model, cfg, total=10):
    opt = build_optimizer(model, cfg.optim)
    sched = build_scheduler(opt, cfg.optim.lr, cfg.optim.warmup_steps, "cosine", total)
    return opt, sched, torch.amp.GradScaler("cpu", enabled=False)


def _train(model, opt, sched, steps, gen):
    for _ in range(steps):
        x = torch.randn(2, 3, 64, 64, generator=gen)
        y = (torch.rand(2, 64, 64, generator=gen) < 0.2).to(torch.uint8)
        loss = model(pixel_values=x, labels=y).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.04)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()


def test_resume_restores_identical_state_and_continues_like_an_uninterrupted_run(tmp_path):
    cfg = PretrainConfig()
    cfg.optim.lr, cfg.optim.warmup_steps, cfg.optim.weight_decay = 1e-3, 2, 0.01
    torch.manual_seed(0)
    model = load_model("scratch:tiny")
    opt, sched, scaler = _setup(model, cfg)
    gen = torch.Generator().manual_seed(1)
    _train(model, opt, sched, 3, gen)
    path = save_training_checkpoint(
        tmp_path / "checkpoint_00000003", model, opt, sched, scaler,
        step=3, epoch=0, meta={"resolution": 64}, generator=gen,
    )  # fmt: skip
    assert json.loads((path / "directsam.json").read_text())["step"] == 3

    # Resume: model from the HF directory, state from training_state.pt (weights_only=True).
    model2 = load_model(str(path))
    opt2, sched2, scaler2 = _setup(model2, cfg)
    gen2 = torch.Generator().manual_seed(123)
    step, epoch = restore_training_state(load_training_state(path), opt2, sched2, scaler2, gen2)
    assert (step, epoch) == (3, 0)
    saved, restored = opt.state_dict(), opt2.state_dict()
    assert saved["param_groups"] == restored["param_groups"]
    assert saved["state"].keys() == restored["state"].keys() and len(saved["state"]) > 10
    for k, s in saved["state"].items():
        for name in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(s[name], restored["state"][k][name]), (k, name)
    assert sched2.last_epoch == 3 and sched2.get_last_lr() == sched.get_last_lr()
    assert torch.equal(gen2.get_state(), gen.get_state())

    # Both continue: the same two more steps give identical weights.
    torch.manual_seed(5)  # dropout / drop-path draws
    _train(model, opt, sched, 2, gen)
    torch.manual_seed(5)
    _train(model2, opt2, sched2, 2, gen2)
    for (n, a), b in zip(model.state_dict().items(), model2.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=n)


def test_latest_local_checkpoint_picks_highest_step_with_state(tmp_path):
    assert latest_local_checkpoint(tmp_path / "missing") is None
    for step, with_state in ((2, True), (10, True), (12, False)):
        d = tmp_path / f"checkpoint_{step:08d}"
        d.mkdir()
        if with_state:
            (d / STATE_FILE).write_bytes(b"")
    (tmp_path / "checkpoint_x").mkdir()
    assert latest_local_checkpoint(tmp_path) == tmp_path / "checkpoint_00000010"
