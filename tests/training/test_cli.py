"""Training job flags, presets and run identity (no Ray, no model)."""

from __future__ import annotations

from pathlib import Path

import pytest

from directsam.cli.train import _parser, build_config
from directsam.config import ConfigError
from directsam.training.trainer import check_ready, plan_steps, resolve_config

REPO = Path(__file__).resolve().parents[2]


def _cfg(stage: str, *argv: str):
    return build_config(_parser(stage, stage).parse_args(list(argv)), stage)


def test_presets_carry_the_seed_settings():
    pre = _cfg("pretrain", "--config", str(REPO / "configs/pretrain.yaml"), "--data", "/d")
    assert (pre.source.type, pre.data.resolution, pre.data.thickness) == ("sa1b", 1800, 3)
    o = pre.optim
    assert (o.lr, o.batch_size, o.grad_accum, o.warmup_steps, o.grad_clip) == (
        1e-4,
        4,
        1,
        5000,
        0.04,
    )
    assert (o.schedule, o.augment_p, o.precision) == ("constant", 0.25, "auto")
    st = _cfg("self_train", "--config", str(REPO / "configs/self_train.yaml"), "--data", "/d")
    assert (st.source.type, st.data.resolution) == ("shards", 1024)
    o = st.optim
    assert (o.lr, o.batch_size, o.grad_accum, o.epochs) == (5e-5, 4, 8, 5)
    assert pre.experiment() == "directsam-pretrain" and st.experiment() == "directsam-self-train"


def test_a_job_without_a_preset_keeps_its_own_section_defaults():
    # A section given in part (here by --data alone) keeps the stage's defaults for the rest:
    # self-train reads shards at 1024 px, not the section class's sa1b at 1800 px.
    st = _cfg("self_train", "--data", "/d")
    assert (st.source.type, st.source.input, st.data.resolution) == ("shards", "/d", 1024)
    pre = _cfg("pretrain", "--data", "/d", "--set", "data.thickness=5")
    assert (pre.source.type, pre.data.resolution, pre.data.thickness) == ("sa1b", 1800, 5)


def test_flags_map_to_config_keys_and_set_wins():
    cfg = _cfg(
        "pretrain",
        "--config", str(REPO / "configs/smoke/pretrain.yaml"),
        "--data", "/data/sa1b", "--source", "images", "--storage-path", "s3://b/runs",
        "--num-workers", "4", "--use-gpu", "--max-steps", "7", "--tracking-uri", "http://h:5000",
        "--experiment", "exp", "--run-name", "r1", "--set", "optim.max_steps=9",
        "--set", "optim.schedule=cosine",
    )  # fmt: skip
    assert (cfg.source.input, cfg.source.type, cfg.run.storage_path) == (
        "/data/sa1b",
        "images",
        "s3://b/runs",
    )
    assert (cfg.run.num_workers, cfg.run.use_gpu, cfg.optim.max_steps) == (4, True, 9)
    assert (cfg.tracking.uri, cfg.experiment(), cfg.run_name()) == ("http://h:5000", "exp", "r1")
    assert cfg.optim.schedule == "cosine" and cfg.init == "scratch:b0"
    with pytest.raises(ConfigError, match="--data"):
        _cfg("pretrain", "--config", str(REPO / "configs/smoke/pretrain.yaml"))
    with pytest.raises(ConfigError, match="--max-steps"):
        _cfg("pretrain", "--data", "/d", "--max-steps", "0")
    with pytest.raises(ConfigError, match="self_train config"):
        _cfg("pretrain", "--config", str(REPO / "configs/smoke/self_train.yaml"), "--data", "/d")


def test_run_name_depends_on_shape_not_length(tmp_path):
    smoke = str(REPO / "configs/smoke/pretrain.yaml")
    a = resolve_config(
        _cfg("pretrain", "--config", smoke, "--data", str(tmp_path), "--max-steps", "5")
    )
    b = resolve_config(
        _cfg("pretrain", "--config", smoke, "--data", str(tmp_path), "--max-steps", "50")
    )
    c = resolve_config(
        _cfg("pretrain", "--config", smoke, "--data", str(tmp_path), "--set", "optim.lr=2e-3")
    )
    assert a.run_name() == b.run_name() != c.run_name()
    assert a.run_name().startswith("directsam-pretrain-")
    # Resolution makes paths absolute, so a relative --data names the same run from any cwd.
    assert a.source.input == str(tmp_path) and Path(a.run.storage_path).is_absolute()


def test_plan_steps_and_local_mode_storage_are_checked():
    cfg = _cfg("self_train", "--config", str(REPO / "configs/self_train.yaml"), "--data", "/d")
    cfg.run.num_workers = 2
    assert plan_steps(cfg, 640) == (5 * 10, 10)  # 640 / (4 x 8 x 2) = 10 steps per epoch
    cfg.optim.max_steps = 3
    assert plan_steps(cfg, 640) == (3, 10)
    with pytest.raises(ConfigError, match="one optimizer step needs 64"):
        plan_steps(cfg, 63)
    cfg.run.num_workers, cfg.run.storage_path = 0, "s3://bucket/runs"
    with pytest.raises(ConfigError, match="--num-workers 0"):
        check_ready(cfg)
