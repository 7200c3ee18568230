"""The consumers of the metric table read it: results.csv / MLflow columns, the printed table,
``directsam compare``, the Tune objective, the model card; their output is unchanged."""

from __future__ import annotations

import csv
import math
from types import SimpleNamespace

import pytest

from directsam.evaluation import compare, report, sweep
from directsam.evaluation.evaluate import score_cache, score_image
from directsam.metrics import table

from .test_cache import _synthetic_cache

ROWS = [
    {"checkpoint": "c", "dataset": "d", "resolution": 64, "threshold": 0.5, "tolerance": 5,
     "mean_recall": 0.812345, "mean_num_tokens": 12.25, "num_images": 6.0, "num_skipped": 1.0,
     "num_failed": 0.0, "mean_precision": 0.5, "mean_boundary_recall": 0.625, "mean_f1": 0.55555},
    {"checkpoint": "c", "dataset": "d", "resolution": 64, "threshold": 0.25, "tolerance": 5,
     "mean_recall": math.nan, "mean_num_tokens": math.nan, "num_images": 0.0, "num_skipped": 7.0,
     "num_failed": 1.0, "mean_precision": math.nan, "mean_boundary_recall": math.nan,
     "mean_f1": math.nan},
]  # fmt: skip


def test_results_columns_and_scores_are_the_table(tmp_path):
    assert report.RESULT_COLUMNS == (*report.PARAM_NAMES, *table.NAMES)
    location, _ = _synthetic_cache(tmp_path)
    scores = score_cache(location, 0.5, 5)
    assert tuple(scores) == table.NAMES
    path = report.write_results_csv([{**ROWS[0], **scores}], tmp_path / "r.csv")
    with open(path) as fh:
        assert tuple(next(csv.reader(fh))) == report.RESULT_COLUMNS


def test_score_image_gives_the_tables_per_image_values(tmp_path):
    _, truth = _synthetic_cache(tmp_path)
    q, gt = truth["img0"]
    means = {m.per_image for m in table.METRICS if m.aggregation == "mean"}
    assert set(score_image(gt, q, 0.5, 5)) == means


def test_printed_table_is_unchanged():
    # The text main printed before the table existed (same rows).
    assert report.format_table(ROWS) == (
        "threshold     tokens   recall  precision      f1  images  skipped\n"
        "     0.25          -        -          -       -       0        7\n"
        "      0.5       12.2   0.8123     0.5000  0.5555       6        1"
    )
    assert [m.digits for m, _, _ in report.TABLE_COLUMNS] == [1, 4, 4, 4, 0, 0]


def _fake_run(metrics: dict[str, float]) -> SimpleNamespace:
    params = {k: str(ROWS[0][k]) for k in report.PARAM_NAMES}
    return SimpleNamespace(
        data=SimpleNamespace(params=params, metrics=metrics, tags={report.TAG_SWEEP: "s1"}),
        info=SimpleNamespace(start_time=7, run_id="r1"),
    )


def test_compare_reads_every_table_metric():
    metrics = {name: float(i) for i, name in enumerate(table.NAMES)}
    row = compare._run_row(_fake_run({**metrics, "not_a_table_metric": 9.0}))
    assert row is not None and "not_a_table_metric" not in row
    assert {name: row[name] for name in table.NAMES} == metrics
    # a run without the recall metric is no result row; a missing other metric reads as NaN
    assert compare._run_row(_fake_run({"mean_num_tokens": 3.0})) is None
    partial = compare._run_row(_fake_run({"mean_recall": 0.5}))
    assert partial is not None and math.isnan(partial["mean_f1"])


def test_tune_optimises_the_tables_objective():
    cfg = sweep.tune_config(3)
    assert (cfg.metric, cfg.mode) == (table.OBJECTIVE.name, table.OBJECTIVE.mode)
    assert (cfg.metric, cfg.mode) == ("mean_recall", "max")
    assert cfg.max_concurrent_trials == 3 and cfg.reuse_actors


def test_model_card_table_is_unchanged():
    from directsam.delivery import hub_export

    assert [m for m, _ in hub_export.CARD_COLUMNS] == [
        table.MEAN_NUM_TOKENS, table.MEAN_RECALL, table.MEAN_PRECISION, table.MEAN_F1,
        table.NUM_IMAGES,
    ]  # fmt: skip
    # None (not logged) and NaN (a mean over no scored image) both print as "-".
    rows = [ROWS[0], {**ROWS[0], "threshold": 0.3, "mean_precision": None, "mean_f1": math.nan}]
    assert hub_export.eval_table(rows) == (
        "| dataset | resolution | tolerance | threshold | mean tokens | mean contour recall "
        "| mean precision | mean F1 | images |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
        "| d | 64 | 5 | 0.5 | 12.2 | 0.8123 | 0.5000 | 0.5555 | 6 |\n"
        "| d | 64 | 5 | 0.3 | 12.2 | 0.8123 | - | - | 6 |"
    )


@pytest.mark.parametrize("threshold", [0.3, 0.6])
def test_panel_numbers_are_the_metrics(tmp_path, threshold):
    """Panels draw the metric's own maps: token count and recall are exactly the metric's."""
    from directsam.evaluation import cache as cache_mod
    from directsam.evaluation.panels import panel_maps
    from directsam.metrics import effective_contour_recall

    _, truth = _synthetic_cache(tmp_path)
    for q, gt in truth.values():
        maps = panel_maps(gt, q, threshold, 5)
        pred = cache_mod.quantized_to_boundary(q, threshold)
        assert (maps["num_tokens"], maps["recall"]) == effective_contour_recall(gt, pred, 5)
        scored = score_image(gt, q, threshold, 5)
        assert scored is not None and maps["recall"] == scored["recall"]
        assert maps["num_tokens"] == scored["num_tokens"]
        matched, missing = int(maps["matched"].sum()), int(maps["missing"].sum())
        assert maps["recall"] == matched / (matched + missing)


def test_plot_draws_tokens_against_recall():
    rows = [ROWS[0], {**ROWS[0], "threshold": 0.3, "mean_num_tokens": 30.0, "mean_recall": 0.9}]
    rows.append(ROWS[1])  # NaN point: left out
    fig = report.plot_recall_vs_tokens(report.curves_by(rows, ["checkpoint"]))
    (line,) = fig.axes[0].lines
    assert list(line.get_xdata()) == [30.0, 12.25]  # by threshold: 0.3, 0.5
    assert list(line.get_ydata()) == [0.9, 0.812345]
    assert [a.get_text() for a in fig.axes[0].texts] == ["0.3", "0.5"]
