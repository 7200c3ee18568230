"""lr_at: linear warmup then constant / cosine, equal to Hugging Face's schedules."""

from __future__ import annotations

import math

import pytest
import torch

from directsam.training.schedule import build_scheduler, lr_at


def test_warmup_then_constant_exact_values():
    assert lr_at(0, 1e-4, 5000) == 0.0
    assert lr_at(2500, 1e-4, 5000) == pytest.approx(5e-5)
    assert lr_at(4999, 1e-4, 5000) == pytest.approx(1e-4 * 4999 / 5000)
    assert lr_at(5000, 1e-4, 5000) == 1e-4
    assert lr_at(10**7, 1e-4, 5000) == 1e-4
    assert lr_at(0, 1e-4, 0) == 1e-4  # no warmup


def test_cosine_endpoints_midpoint_and_floor():
    kw = dict(base_lr=1.0, warmup_steps=10, schedule="cosine", total_steps=110)
    assert lr_at(10, **kw) == pytest.approx(1.0)
    assert lr_at(60, **kw) == pytest.approx(0.5)
    assert lr_at(110, **kw) == pytest.approx(0.0, abs=1e-12)
    assert lr_at(500, **kw) == pytest.approx(0.0, abs=1e-12)  # clamped after the end
    assert lr_at(110, **kw, min_lr_ratio=0.1) == pytest.approx(0.1)
    assert lr_at(60, **kw, min_lr_ratio=0.1) == pytest.approx(0.1 + 0.9 * 0.5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="total_steps"):
        lr_at(5, 1.0, 0, "cosine")
    with pytest.raises(ValueError, match="schedule"):
        lr_at(5, 1.0, 0, "linear")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="step"):
        lr_at(-1, 1.0, 0)


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_equals_hugging_face_schedules(schedule):
    """The seed trained with HF Trainer's schedules: ours must give the same lr every step."""
    from transformers import get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup

    base, warmup, total = 1e-4, 7, 40
    p = torch.nn.Parameter(torch.zeros(1))
    hf_opt = torch.optim.AdamW([p], lr=base)
    if schedule == "constant":
        hf = get_constant_schedule_with_warmup(hf_opt, warmup)
    else:
        hf = get_cosine_schedule_with_warmup(hf_opt, warmup, total)
    ours_opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=base)
    ours = build_scheduler(ours_opt, base, warmup, schedule, total)
    for step in range(total + 1):  # HF keeps cycling past the end; we clamp (tested above)
        expected = hf.get_last_lr()[0]
        assert ours.get_last_lr()[0] == pytest.approx(expected, rel=1e-9, abs=1e-15), step
        assert lr_at(step, base, warmup, schedule, total) == pytest.approx(expected, abs=1e-15)
        hf_opt.step(), hf.step(), ours_opt.step(), ours.step()


def test_scheduler_state_round_trip():
    """A restored scheduler continues at the saved step (resume)."""
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = build_scheduler(opt, 1.0, 10, "cosine", 50)
    for _ in range(23):
        opt.step()
        sched.step()
    state = sched.state_dict()
    opt2 = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched2 = build_scheduler(opt2, 1.0, 10, "cosine", 50)
    sched2.load_state_dict(state)
    assert sched2.last_epoch == 23
    opt2.step()
    sched2.step()
    assert opt2.param_groups[0]["lr"] == pytest.approx(lr_at(24, 1.0, 10, "cosine", 50))
    assert math.isclose(sched2.get_last_lr()[0], lr_at(24, 1.0, 10, "cosine", 50))
