"""Evaluation CLI and compare without Ray: flag errors name the flag, the registry fills source
keys, and compare reads MLflow trial runs back into tables and a plot."""

from __future__ import annotations

import pytest

from directsam.cli import evaluate as cli
from directsam.cli.compare import compare_main
from directsam.config import ConfigError, load_config
from directsam.evaluation import report
from directsam.evaluation.config import EvalConfig, SweepConfig

BASE = ["--checkpoint", "scratch:tiny", "--input", "/nonexistent/sample"]


@pytest.mark.parametrize(
    ("argv", "flag", "why"),
    [
        (["--resolution", "abc"], "--resolution", "integer"),
        (["--resolution", "16"], "--resolution", ">= 32"),
        (["--tolerance", "0"], "--tolerance", ">= 1"),
        (["--thresholds", "0.1,abc"], "--thresholds", "number"),
        (["--thresholds", "0.1,1.5"], "--thresholds", "(0, 1]"),
        (["--num-samples", "-3"], "--num-samples", ">= 1"),
        (["--source", "images"], "--source", "no annotations"),
        (["--source", "nope"], "--source", "expected one of"),
        (["--set", "batch_size=0"], "--batch-size", ">= 1"),
        (["--set", "tracking=maybe"], "--set tracking", "true/false"),
        (["--set", "nonsense=1"], "--set nonsense", "unknown key"),
    ],
)
def test_evaluate_flag_errors_name_the_flag(argv, flag, why, capsys):
    assert cli.evaluate_main([*BASE, *argv]) == 2
    err = capsys.readouterr().err
    assert flag in err and why in err


def test_missing_required_flags_are_all_reported(capsys):
    assert cli.evaluate_main(["--resolution", "0"]) == 2
    err = capsys.readouterr().err
    assert "--checkpoint" in err and "--input" in err and "--resolution" in err


def test_sweep_flags_and_grids(capsys):
    assert cli.sweep_main([*BASE, "--tolerances", "3,0"]) == 2
    assert "--tolerances" in capsys.readouterr().err
    cfg = load_config(SweepConfig, values={"checkpoint": "c", "source.input": "i", "tolerances": "5,3,5",
                                           "resolutions": "512,1024"})  # fmt: skip
    assert cfg.tolerance_grid() == [3, 5] and cfg.resolution_grid() == [512, 1024]
    at = cfg.at_resolution(512)
    assert type(at) is EvalConfig and at.resolution == 512 and at.checkpoint == "c"


def test_defaults_are_the_seeds():
    cfg = EvalConfig(checkpoint="c")
    cfg.source.input = "i"
    assert (cfg.resolution, cfg.thickness, cfg.tolerance, cfg.source.num_samples) == (
        1024,
        2,
        5,
        100,
    )
    assert (cfg.source.type, cfg.source.split, cfg.source.registry) == (
        "sa1b", "val", "configs/eval_datasets.yaml")  # fmt: skip
    assert cfg.thresholds == [0.1, 0.2, 0.3, 0.4, 0.5] and cfg.panel_at() == 0.3
    assert cfg.experiment == "directsam-eval" and cfg.validate() == []
    with pytest.raises(ConfigError, match="--config"):
        load_config(EvalConfig, path="/nonexistent.yaml")


def test_shipped_configs_load(tmp_path):
    for name, cls in [("configs/evaluate.yaml", EvalConfig), ("configs/sweep.yaml", SweepConfig),
                      ("configs/smoke/sweep.yaml", SweepConfig)]:  # fmt: skip
        cfg = load_config(cls, path=name, values={"checkpoint": "c", "source.input": "i"})
        assert cfg.thresholds == [0.1, 0.2, 0.3, 0.4, 0.5]
    from directsam.data.sources.registry import load_registry

    entries = load_registry("configs/eval_datasets.yaml")
    assert {"PascalPanopticParts", "ADE20k", "COCONut_relabeld_COCO_val", "DUTS-TE"} <= set(entries)
    assert len(entries) == 16


def test_registry_fills_source_keys(tmp_path):
    registry = tmp_path / "reg.yaml"
    registry.write_text(
        "datasets:\n  ADE20k:\n    type: labelmap\n    input: /data/ade/images\n"
        "    labels: /data/ade/labels\n    mode: single_channel\n    split: val\n"
        "  Empty:\n    type: coco\n    input: ''\n"
    )
    parser = cli.argparse.ArgumentParser()
    cli._add_args(parser, sweep=False)
    args = parser.parse_args(
        ["--checkpoint", "c", "--dataset", "ADE20k", "--registry", str(registry)]
    )
    cfg = cli._load(EvalConfig, args, sweep=False)
    assert (cfg.source.type, cfg.source.input, cfg.source.labels, cfg.source.split) == (
        "labelmap",
        "/data/ade/images",
        "/data/ade/labels",
        "val",
    )
    args = parser.parse_args(["--checkpoint", "c", "--dataset", "ADE20k", "--registry", str(registry),
                              "--input", "/mine"])  # fmt: skip
    mine = cli._load(EvalConfig, args, sweep=False).source
    assert (mine.type, mine.input, mine.labels) == ("labelmap", "/mine", "/data/ade/labels")
    args = parser.parse_args(
        ["--checkpoint", "c", "--dataset", "Empty", "--registry", str(registry)]
    )
    with pytest.raises(ConfigError, match="--dataset Empty"):
        cli._load(EvalConfig, args, sweep=False)


def _rows(checkpoint, dataset, recall_scale, thresholds=(0.1, 0.3, 0.5)):
    return [
        {"checkpoint": checkpoint, "dataset": dataset, "resolution": 64, "tolerance": 5,
         "threshold": t, "mean_recall": recall_scale * (1 - t), "mean_num_tokens": 100 * (1 - t),
         "num_images": 8.0, "num_skipped": 0.0, "num_failed": 0.0, "mean_precision": 0.5,
         "mean_boundary_recall": 0.4, "mean_f1": 0.45}
        for t in thresholds
    ]  # fmt: skip


def test_compare_reads_runs_back(mlflow_uri, tmp_path, capsys):
    exp = "cmp"
    old = _rows("ckpt-a", "ADE20k", 0.5, thresholds=(0.2, 0.4))
    report.log_trial_runs(
        mlflow_uri, exp, old, report.run_tags("trial", "s0", "ckpt-a", "ADE20k", "x")
    )
    newer = [
        (_rows("ckpt-a", "ADE20k", 0.9), "s1"),
        (_rows("ckpt-b", "ADE20k", 0.7), "s2"),
        (_rows("ckpt-a", "LIP", 0.8), "s3"),
    ]
    for rows, sweep in newer:
        tags = report.run_tags("trial", sweep, rows[0]["checkpoint"], rows[0]["dataset"], "x")
        report.log_trial_runs(mlflow_uri, exp, rows, tags)
    # a summary run is not a trial and must be ignored
    (tmp_path / "empty").mkdir()
    report.log_summary_run(mlflow_uri, exp, report.run_tags("summary", "s1", "ckpt-a", "ADE20k", "x"),
                           {"a": 1}, tmp_path / "empty", "s1")  # fmt: skip

    png = tmp_path / "cmp.png"
    assert (
        compare_main(["--experiment", "cmp", "--tracking-uri", mlflow_uri, "--output", str(png)])
        == 0
    )
    out = capsys.readouterr().out
    assert out.count("threshold") == 3  # three curves: (a, ADE20k), (b, ADE20k), (a, LIP)
    assert "checkpoint ckpt-a | dataset ADE20k" in out and "s1" in out and "s0" not in out
    assert "0.8100" in out  # recall 0.9 * (1 - 0.1): the newest sweep's values
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    from directsam.evaluation.compare import compare

    _, _, curves = compare("cmp", mlflow_uri, tmp_path / "c2.png", datasets=["ADE20k"])
    assert sorted(k[0] for k in curves) == ["ckpt-a", "ckpt-b"]
    a = curves[("ckpt-a", "ADE20k", 64, 5)]
    assert [r["threshold"] for r in a] == [0.1, 0.3, 0.5]
    assert [r["mean_recall"] for r in a] == pytest.approx([0.81, 0.63, 0.45])
    assert compare_main(["--experiment", "missing", "--tracking-uri", mlflow_uri]) == 2
    assert "--experiment 'missing'" in capsys.readouterr().err
