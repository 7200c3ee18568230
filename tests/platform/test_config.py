"""directsam.config: YAML + shorthand flags + --set overrides into typed dataclasses."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import pytest

from directsam.config import (
    ConfigError,
    add_config_args,
    config_from_args,
    config_hash,
    flatten,
    from_dict,
    load_config,
    to_dict,
)


@dataclass
class ModelPart:
    spec: str = "scratch:b0"
    threshold: float = 0.5
    dtype: Literal["fp32", "bf16"] = "fp32"

    def validate(self):
        if not 0.0 < self.threshold < 1.0:
            yield ("threshold", f"must be in (0, 1), got {self.threshold}")


@dataclass
class Job:
    model: ModelPart = field(default_factory=ModelPart)
    steps: int = 3
    thresholds: list[float] = field(default_factory=lambda: [0.1, 0.5])
    output: str | None = None
    fresh: bool = False


def test_defaults_file_flags_and_set_in_precedence_order(tmp_path):
    cfg_file = tmp_path / "job.yaml"
    cfg_file.write_text("steps: 10\nmodel:\n  spec: scratch:b5\n  threshold: 0.3\n")
    parser = argparse.ArgumentParser()
    add_config_args(parser)
    parser.add_argument("--threshold", type=float, default=None)
    parser.add_argument("--max-steps", dest="max_steps", type=int, default=None)
    args = parser.parse_args(
        [
            "--config",
            str(cfg_file),
            "--threshold",
            "0.4",
            "--set",
            "model.threshold=0.2",
            "--set",
            "thresholds=0.1,0.2,0.3",
            "--set",
            "fresh=true",
        ]
    )
    cfg = config_from_args(
        Job, args, shorthands={"threshold": "model.threshold", "max_steps": "steps"}
    )
    assert cfg.steps == 10  # file, flag not given
    assert cfg.model.spec == "scratch:b5"
    assert cfg.model.threshold == 0.2  # --set beats the named flag
    assert cfg.thresholds == [0.1, 0.2, 0.3]
    assert cfg.fresh is True
    assert cfg.output is None


def test_every_problem_reported_once_naming_its_flag():
    with pytest.raises(ConfigError) as info:
        load_config(
            Job,
            overrides=["model.threshold=1.5", "steps=abc", "model.dtype=fp8", "stpes=3"],
            flag_names={"model.threshold": "--threshold"},
        )
    msg = str(info.value)
    assert "--threshold: must be in (0, 1), got 1.5" in msg
    assert "--set steps: expected an integer, got 'abc'" in msg
    assert "--set model.dtype: expected one of ['fp32', 'bf16'], got 'fp8'" in msg
    assert "--set stpes: unknown key 'stpes'" in msg


def test_missing_or_bad_config_file_names_the_flag(tmp_path):
    with pytest.raises(ConfigError, match="--config: file not found"):
        load_config(Job, path=tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n- not a mapping\n")
    with pytest.raises(ConfigError, match="--config: .* mapping"):
        load_config(Job, path=bad)
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config(Job, overrides=["steps"])


def test_round_trip_flatten_and_hash():
    cfg = load_config(Job, overrides=["model.spec=scratch:b2"])
    assert from_dict(Job, to_dict(cfg)) == cfg
    flat = flatten(cfg)
    assert flat["model.spec"] == "scratch:b2"
    assert flat["thresholds"] == "[0.1, 0.5]"
    same = load_config(Job, overrides=["model.spec=scratch:b2", "steps=99"])
    # A hash over shape-defining keys ignores length settings such as steps.
    assert config_hash(cfg, ["model"]) == config_hash(same, ["model"])
    assert config_hash(cfg) != config_hash(same)
    assert len(config_hash(cfg)) == 10


@dataclass
class SmallJob(Job):
    """A job whose section defaults differ from the section class's (as self-train's do)."""

    RENAMED_KEYS: ClassVar[dict[str, str]] = {"model_spec": "model.spec", "model": "model.spec"}

    model: ModelPart = field(default_factory=lambda: ModelPart(spec="scratch:b1", dtype="bf16"))
    mode: Literal["a", "b"] | None = None


def test_a_partly_given_section_keeps_the_jobs_own_defaults():
    cfg = load_config(SmallJob, overrides=["model.threshold=0.3"])
    assert (cfg.model.spec, cfg.model.dtype, cfg.model.threshold) == ("scratch:b1", "bf16", 0.3)
    assert load_config(SmallJob).model == ModelPart(spec="scratch:b1", dtype="bf16")
    assert load_config(Job, overrides=["model.threshold=0.3"]).model.spec == "scratch:b0"


def test_renamed_keys_are_refused_naming_the_new_key(tmp_path):
    old = tmp_path / "old.yaml"
    old.write_text("model_spec: scratch:b3\nsteps: 4\n")
    with pytest.raises(ConfigError) as info:
        load_config(SmallJob, path=old)
    assert "the key 'model_spec' is now 'model.spec'" in str(info.value)
    assert 'write model.spec: "scratch:b3"' in str(info.value)
    # An old plain value where a section now is; refused even when a flag fills the section.
    old.write_text("model: scratch:b3\n")
    with pytest.raises(ConfigError, match="the key 'model' is now 'model.spec'"):
        load_config(SmallJob, path=old, values={"model.threshold": 0.3})
    with pytest.raises(ConfigError, match="--set model_spec: the key 'model_spec' is now"):
        load_config(SmallJob, overrides=["model_spec=x"])
    assert load_config(SmallJob, overrides=["model.spec=x"]).model.spec == "x"  # a section


def test_prepare_sees_what_was_given_before_the_build():
    seen = []

    def prepare(raw, flag_names):
        seen.append(({k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()},
                     dict(flag_names)))  # fmt: skip
        raw.setdefault("model", {}).setdefault("spec", "filled")

    cfg = load_config(Job, overrides=["steps=5"], flag_names={"steps": "--steps"},
                      prepare=prepare)  # fmt: skip
    assert seen == [({"steps": 5}, {"steps": "--steps"})]
    assert cfg.model.spec == "filled"
    given = load_config(Job, overrides=["model.spec=mine"], prepare=prepare)
    assert given.model.spec == "mine"


def test_hash_names_and_empty_optional_choices():
    cfg = load_config(Job, overrides=["model.spec=scratch:b2"])
    renamed = {"model.spec": "old.spec", "model.threshold": "old.threshold",
               "model.dtype": "old.dtype"}  # fmt: skip
    old = {"old": {"spec": "scratch:b2", "threshold": 0.5, "dtype": "fp32"}}
    assert config_hash(cfg, ["model"], names=renamed) == config_hash(old, ["old"])
    assert config_hash(cfg, ["model"], names=renamed) != config_hash(cfg, ["model"])
    # An empty optional choice is unset; an empty required choice is still refused.
    assert load_config(SmallJob, overrides=["mode="]).mode is None
    assert load_config(SmallJob, overrides=["mode=b"]).mode == "b"
    with pytest.raises(ConfigError, match="--set model.dtype: expected one of"):
        load_config(SmallJob, overrides=["model.dtype="])
