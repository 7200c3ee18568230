"""One SourceSpec for every job: the one spelling of the types, the lister table, the source
flags, the dataset registry rule and the renamed keys (no Ray)."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path
from typing import get_args

import pytest

from directsam.cli.flags import source_shorthands
from directsam.config import ConfigError, load_config
from directsam.data.sources import LISTERS, SOURCE_TYPES, SourceSpec, SourceType, list_source
from directsam.data.sources.registry import REGISTRY_KEYS, fill_from_registry

REPO = Path(__file__).resolve().parents[3]


def _spellings(root: Path) -> list[str]:
    """Tuple/list/set literals (and ``Literal[...]``) naming >= 4 of the five source types."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Tuple | ast.List | ast.Set):
                names = {e.value for e in node.elts if isinstance(e, ast.Constant)}
                if len(names & set(SOURCE_TYPES)) >= 4:
                    found.append(f"{path.relative_to(root.parent)}:{node.lineno}")
    return found


def test_the_source_types_are_spelled_once_and_each_has_its_lister():
    assert SOURCE_TYPES == get_args(SourceType) == ("sa1b", "coco", "labelmap", "images", "shards")
    assert _spellings(REPO / "directsam") == ["directsam/data/sources/spec.py:20"]
    assert tuple(LISTERS) == SOURCE_TYPES
    assert {fn.__module__.rsplit(".", 1)[-1] for fn in LISTERS.values()} == {
        "sa1b", "coco", "labelmap", "images", "source"  # shards/source.py
    }  # fmt: skip


def test_a_spec_that_cannot_be_listed_names_its_flags(tmp_path):
    with pytest.raises(ValueError, match=r"--source is required \(sa1b, .*\); --input is req"):
        list_source(SourceSpec())
    with pytest.raises(ValueError, match=r"--source must be one of sa1b, .*, got 'tiff'"):
        list_source(SourceSpec("tiff", str(tmp_path)))  # type: ignore[arg-type]
    bad = SourceSpec("images", str(tmp_path), mode="gray", split="test", num_samples=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError) as err:
        list_source(bad)
    for words in ("--mode must be one of", "--split must be one of", "--num-samples must be >= 1"):
        assert words in str(err.value)
    assert SourceSpec("images", str(tmp_path)).check().type == "images"


def _registry(tmp_path: Path) -> Path:
    path = tmp_path / "reg.yaml"
    path.write_text(
        "datasets:\n"
        "  ADE:\n    type: labelmap\n    input: /data/ade\n    labels: /data/ade-labels\n"
        "    mode: rgb\n    split: val\n"
        "  Empty:\n    type: coco\n    input: ''\n"
    )
    return path


def _label(*argv: str):
    from directsam.cli.label import add_label_args, build_config

    parser = __import__("argparse").ArgumentParser()
    add_label_args(parser)
    base = ["--output", "/o", "--checkpoint", "scratch:tiny"]
    return build_config(parser.parse_args([*base, *argv])).source


def _train(*argv: str):
    from directsam.cli.train import _parser, build_config

    return build_config(_parser("pretrain", "pretrain").parse_args(list(argv)), "pretrain")


def _evaluate(*argv: str):
    from directsam.cli import evaluate as cli
    from directsam.evaluation.config import EvalConfig

    parser = cli.argparse.ArgumentParser()
    cli._add_args(parser, sweep=False)
    return cli._load(EvalConfig, parser.parse_args(["--checkpoint", "c", *argv]), False).source


def test_the_registry_fills_what_no_job_was_given_the_same_way(tmp_path):
    reg = str(_registry(tmp_path))
    label = _label("--dataset", "ADE", "--registry", reg)
    evaluate = _evaluate("--dataset", "ADE", "--registry", reg)
    train = _train("--dataset", "ADE", "--set", f"source.registry={reg}", "--set",
                   "source.split=train").source  # fmt: skip
    for spec in (label, evaluate, train):
        assert (spec.type, spec.input, spec.labels, spec.mode) == (
            "labelmap", "/data/ade", "/data/ade-labels", "rgb")  # fmt: skip
    assert (label.split, evaluate.split, train.split) == ("val", "val", "train")
    # Given keys win, by flag, --set or YAML; an empty value is not given.
    mine = _label("--dataset", "ADE", "--registry", reg, "--input", "/mine", "--mode", "rgb",
                  "--set", "source.labels=", "--split", "all")  # fmt: skip
    assert (mine.type, mine.input, mine.labels, mine.split) == (
        "labelmap", "/mine", "/data/ade-labels", "all")  # fmt: skip
    preset = tmp_path / "eval.yaml"
    preset.write_text("source:\n  type: coco\n  input: ''\n  mode: single_channel\n")
    spec = _evaluate("--config", str(preset), "--dataset", "ADE", "--registry", reg)
    assert (spec.type, spec.input, spec.mode) == ("coco", "/data/ade", "single_channel")
    # A name that is not in the registry is a plain name.
    plain = _evaluate("--dataset", "mine", "--registry", reg, "--input", "/x")
    assert (plain.type, plain.dataset, plain.split) == ("sa1b", "mine", "val")


def test_registry_problems_name_the_jobs_flags(tmp_path):
    reg = str(_registry(tmp_path))
    with pytest.raises(ConfigError, match="--dataset Empty: .* pass --input"):
        _label("--dataset", "Empty", "--registry", reg)
    with pytest.raises(ConfigError, match="--dataset Empty: .* pass --data"):
        _train("--dataset", "Empty", "--set", f"source.registry={reg}")
    with pytest.raises(ConfigError, match="--registry: file not found"):
        _evaluate("--dataset", "ADE", "--registry", str(tmp_path / "none.yaml"))
    # Training trains on train and validates on val: a val split (here the registry's) is refused.
    with pytest.raises(ConfigError, match="--set source.split: training trains on the train"):
        _train("--dataset", "ADE", "--set", f"source.registry={reg}")
    # The shipped default registry is consulted for registry names only.
    assert _train("--dataset", "SA1B", "--data", "/d").source.type == "sa1b"


def test_fill_from_registry_leaves_a_tree_without_a_registry_name_alone(tmp_path):
    raw = {"source": {"input": "/x"}, "other": 1}
    fill_from_registry(raw, {}, str(tmp_path / "missing.yaml"))
    assert raw == {"source": {"input": "/x"}, "other": 1}
    raw = {"source": {"dataset": "ADE"}}
    fill_from_registry(raw, {}, str(tmp_path / "missing.yaml"))  # a missing default: no entries
    assert raw == {"source": {"dataset": "ADE"}}
    assert set(REGISTRY_KEYS) <= {f.name for f in dataclasses.fields(SourceSpec)}


def test_every_job_maps_its_source_flags_to_the_same_keys():
    assert source_shorthands(("type", "input", "seed"), "--data") == {
        "source": "source.type", "data": "source.input", "seed": "source.seed"}  # fmt: skip
    label = _label("--source", "coco", "--input", "/i", "--annotations", "/a.json",
                   "--num-samples", "3", "--seed", "4", "--dataset", "d")  # fmt: skip
    train = _train("--source", "coco", "--data", "/i", "--set", "source.annotations=/a.json",
                   "--num-samples", "3", "--seed", "4", "--dataset", "d").source  # fmt: skip
    evaluate = _evaluate("--source", "coco", "--input", "/i", "--annotations", "/a.json",
                         "--num-samples", "3", "--seed", "4", "--dataset", "d",
                         "--split", "all")  # fmt: skip
    for spec in (label, train, evaluate):
        assert dataclasses.replace(spec, registry="r", split="all") == SourceSpec(
            "coco", "/i", dataset="d", annotations="/a.json", num_samples=3, seed=4,
            registry="r")  # fmt: skip


def test_old_source_keys_fail_fast_naming_the_new_key(tmp_path):
    from directsam.evaluation.config import EvalConfig
    from directsam.training.config import PretrainConfig

    old = tmp_path / "old.yaml"
    old.write_text("data:\n  source: coco\n  input: /x\n  resolution: 512\n")
    with pytest.raises(ConfigError) as err:
        load_config(PretrainConfig, old)
    assert "the key 'data.source' is now 'source.type'" in str(err.value)
    assert "the key 'data.input' is now 'source.input'" in str(err.value)
    old.write_text("checkpoint: c\nsource: coco\nsplit: val\n")
    with pytest.raises(ConfigError) as err:
        load_config(EvalConfig, old, values={"source.input": "/i"})  # --input given too
    assert "the key 'source' is now 'source.type'" in str(err.value)
    assert "the key 'split' is now 'source.split'" in str(err.value)
    with pytest.raises(ConfigError, match="--set data.input: the key 'data.input' is now"):
        _train("--set", "data.input=/x")
