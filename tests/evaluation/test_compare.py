"""``directsam compare --wide --label --log-run``: one threshold x checkpoint table, its CSV and
the plot, read back from MLflow trial runs and logged as a comparison run (no Ray)."""

from __future__ import annotations

import csv
from pathlib import Path

from directsam.cli import compare as cli
from directsam.evaluation import report
from directsam.evaluation.compare import KIND_COMPARISON, TABLE_FILE, WIDE_CSV_FILE


def _log(uri: str, exp: str, checkpoint: str, sweep: str, points: dict[float, tuple[float, float]]):
    """Trial runs as ``sweep``/``evaluate`` leave them (tags, the five params, the metrics),
    written with the plain MLflow client so the test reads compare's input contract only."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    tags = report.run_tags("trial", sweep, checkpoint, "demo-val", "sha")
    for t, (recall, tokens) in points.items():
        run = client.create_run(exp, tags=tags)
        params = {"checkpoint": checkpoint, "dataset": "demo-val", "resolution": 128,
                  "threshold": t, "tolerance": 5}  # fmt: skip
        metrics = {"mean_recall": recall, "mean_num_tokens": tokens, "num_images": 16.0}
        client.log_batch(
            run.info.run_id,
            params=[Param(k, str(v)) for k, v in params.items()],
            metrics=[Metric(k, v, 0, 0) for k, v in metrics.items()],
        )
        client.set_terminated(run.info.run_id, "FINISHED")


def test_wide_table_labels_csv_and_comparison_run(mlflow_uri, tmp_path, capsys):
    from mlflow.tracking import MlflowClient

    from directsam.tracking import ensure_experiment

    exp = ensure_experiment("cmp", mlflow_uri)
    _log(mlflow_uri, exp, "scratch:b0", "s-a", {0.1: (0.0, 1.0), 0.5: (0.0906, 3.125)})
    _log(
        mlflow_uri, exp, "/runs/pre/checkpoint_150", "s-b", {0.1: (0.744, 20.25), 0.5: (0.002, 2.0)}
    )
    _log(mlflow_uri, exp, "/runs/self/checkpoint_50", "s-c", {0.1: (0.8, 24.0)})  # no 0.5
    _log(mlflow_uri, exp, "other", "s-d", {0.1: (0.5, 9.0)})  # not asked for
    png = tmp_path / "out" / "recall_vs_tokens.png"
    argv = ["--experiment", "cmp", "--tracking-uri", mlflow_uri, "--output", str(png),
            "--wide", "--log-run",
            "--checkpoint", "scratch:b0", "--label", "scratch:b0=random init",
            "--checkpoint", "/runs/pre/checkpoint_150", "--label", "/runs/pre/checkpoint_150=stage 1",
            "--checkpoint", "/runs/self/checkpoint_50", "--label", "/runs/self/checkpoint_50=stage 3"]  # fmt: skip
    assert cli.compare_main(argv) == 0
    out = capsys.readouterr().out
    table = (png.parent / TABLE_FILE).read_text()
    expected = [
        "dataset demo-val | 128 px | tolerance 5 | mean effective contour recall and mean number "
        "of tokens per image",
        "               random init          stage 1          stage 3",
        "threshold   recall  tokens   recall  tokens   recall  tokens",
        "      0.1    0.000     1.0    0.744    20.2    0.800    24.0",
        "      0.5    0.091     3.1    0.002     2.0        -       -",
        "  random init = scratch:b0 (sweep s-a, 16 images)",
        "  stage 1 = /runs/pre/checkpoint_150 (sweep s-b, 16 images)",
        "  stage 3 = /runs/self/checkpoint_50 (sweep s-c, 16 images)",
    ]
    assert table.splitlines() == expected
    assert "\n".join(expected) in out and "other" not in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    with open(png.parent / WIDE_CSV_FILE) as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["label"], r["threshold"], r["mean_recall"]) for r in rows] == [
        ("random init", "0.1", "0.0"), ("stage 1", "0.1", "0.744"), ("stage 3", "0.1", "0.8"),
        ("random init", "0.5", "0.0906"), ("stage 1", "0.5", "0.002"),
    ]  # fmt: skip

    client = MlflowClient(tracking_uri=mlflow_uri)
    (run,) = client.search_runs(
        [exp], filter_string=f"tags.`{report.TAG_KIND}` = '{KIND_COMPARISON}'"
    )
    assert f"comparison run {run.info.run_id}" in out
    assert run.data.params["checkpoint.1"] == "/runs/pre/checkpoint_150"
    assert run.data.params["label.1"] == "stage 1"
    names = {Path(f.path).name for f in client.list_artifacts(run.info.run_id)}
    assert names == {"recall_vs_tokens.png", TABLE_FILE, WIDE_CSV_FILE}

    # The comparison run is not a trial: comparing again gives the same table.
    assert cli.compare_main(argv) == 0
    assert (png.parent / TABLE_FILE).read_text() == table


def test_label_needs_checkpoint_and_name(mlflow_uri, capsys):
    argv = ["--experiment", "cmp", "--tracking-uri", mlflow_uri, "--label", "no-equals-sign"]
    assert cli.compare_main(argv) == 2
    assert "--label 'no-equals-sign': expected CHECKPOINT=NAME" in capsys.readouterr().err
