"""docs/CONFIG.md is the generated reference of every job config key, and it is current."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from directsam.config_reference import PRESETS, load_class, reference_markdown, walk

REPO = Path(__file__).resolve().parents[2]


def test_config_reference_is_up_to_date():
    current = (REPO / "docs" / "CONFIG.md").read_text()
    assert current == reference_markdown(), (
        "docs/CONFIG.md is stale: run `python -m directsam.config_reference > docs/CONFIG.md`"
    )


def _yaml_keys(tree: dict, prefix: str = "") -> set[str]:
    keys = set()
    for key, value in tree.items():
        if isinstance(value, dict):
            keys |= _yaml_keys(value, f"{prefix}{key}.")
        else:
            keys.add(f"{prefix}{key}")
    return keys


def test_every_preset_key_is_documented():
    """Each key set in a configs/*.yaml preset is a documented field of its config class."""
    text = (REPO / "docs" / "CONFIG.md").read_text()
    for files, path, _ in PRESETS:
        cls = load_class(path)
        documented = {key: doc for key, _, _, doc in walk(cls())}
        for name in files.split(", "):
            raw = yaml.safe_load((REPO / name).read_text()) or {}
            for key in _yaml_keys(raw):
                assert key in documented, f"{name}: {key} is not a field of {cls.__name__}"
                assert f"| `{key}` |" in text
    # A field without an attribute docstring shows up as an empty "meaning" cell.
    missing = [
        (path, key)
        for _, path, _ in PRESETS
        for key, _, _, doc in walk(load_class(path)())
        if not doc
    ]
    assert not missing, missing


def test_walk_reports_subclass_defaults():
    """Stage 3 overrides stage 1's section defaults; the reference shows each job's own."""
    from directsam.training.config import PretrainConfig, SelfTrainConfig

    pre = {k: v for k, _, v, _ in walk(PretrainConfig())}
    post = {k: v for k, _, v, _ in walk(SelfTrainConfig())}
    assert pre["data.resolution"] == 1800 and post["data.resolution"] == 1024
    assert post["optim.grad_accum"] == 8
    leaves = [f for f in dataclasses.fields(PretrainConfig)]
    assert len(pre) > len(leaves)  # nested sections are flattened to dotted keys
