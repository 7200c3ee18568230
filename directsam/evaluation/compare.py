"""MLflow evaluation runs -> a table per (checkpoint, dataset) and a recall-vs-tokens plot.

Replaces the seed's notebook that collected per-run CSVs by hand: trial runs (tag
``directsam.kind=trial``, written by ``evaluate`` and ``sweep``) are queried, each curve
(checkpoint, dataset, resolution, tolerance) is taken from the most recent sweep that measured
it, and the plot has one axes per dataset with one curve per checkpoint.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from directsam.evaluation import report
from directsam.metrics import table

CURVE_KEYS = ("checkpoint", "dataset", "resolution", "tolerance")


def load_trial_rows(experiment: str, tracking_uri: str) -> list[dict[str, Any]]:
    """Every finished trial run of ``experiment`` as a result row (+ ``sweep_id``, ``start_time``).

    Raises:
        ValueError: the experiment does not exist at ``tracking_uri``.
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise ValueError(
            f"--experiment {experiment!r}: no such MLflow experiment at {tracking_uri}"
        )
    rows: list[dict[str, Any]] = []
    token = None
    while True:
        page = client.search_runs(
            [exp.experiment_id],
            filter_string=f"tags.`{report.TAG_KIND}` = '{report.KIND_TRIAL}' and attributes.status = 'FINISHED'",
            max_results=1000,
            page_token=token,
        )
        for run in page:
            row = _run_row(run)
            if row is not None:
                rows.append(row)
        token = page.token
        if not token:
            break
    return rows


def _run_row(run: Any) -> dict[str, Any] | None:
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    if any(k not in params for k in report.PARAM_NAMES) or table.MEAN_RECALL.name not in metrics:
        return None
    row: dict[str, Any] = {
        "checkpoint": params["checkpoint"],
        "dataset": params["dataset"],
        "resolution": int(float(params["resolution"])),
        "threshold": float(params["threshold"]),
        "tolerance": int(float(params["tolerance"])),
        "sweep_id": tags.get(report.TAG_SWEEP, ""),
        "start_time": int(run.info.start_time or 0),
        "run_id": run.info.run_id,
    }
    for name in table.NAMES:
        row[name] = float(metrics.get(name, math.nan))
    return row


def latest_curves(rows: list[dict[str, Any]]) -> dict[tuple[Any, ...], list[dict[str, Any]]]:
    """Group rows by ``CURVE_KEYS``; keep only the most recent sweep's rows in each group."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[tuple(row[k] for k in CURVE_KEYS)].append(row)
    out = {}
    for key, members in sorted(groups.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
        started: dict[str, int] = defaultdict(int)
        for r in members:
            started[r["sweep_id"]] = max(started[r["sweep_id"]], r["start_time"])
        latest = max(started, key=lambda s: (started[s], s))
        out[key] = sorted(
            (r for r in members if r["sweep_id"] == latest), key=lambda r: r["threshold"]
        )
    return out


def format_comparison(curves: dict[tuple[Any, ...], list[dict[str, Any]]]) -> str:
    """One titled ``threshold / tokens / recall`` table per curve."""
    blocks = []
    for key, rows in curves.items():
        ckpt, dataset, res, tol = key
        title = f"checkpoint {ckpt} | dataset {dataset} | {res} px | tolerance {tol} | {rows[0]['sweep_id']}"
        blocks.append(title + "\n" + report.format_table(rows))
    return "\n\n".join(blocks)


def plot_comparison(curves: dict[tuple[Any, ...], list[dict[str, Any]]], path: str | Path) -> Path:
    """PNG with one axes per dataset and one curve per checkpoint (plus res/tol when they vary)."""
    by_dataset: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for key in curves:
        by_dataset[key[1]].append(key)
    fig, axes = report.new_figure(max(1, len(by_dataset)))
    for ax, (dataset, keys) in zip(axes, sorted(by_dataset.items())):
        rows = [r for k in keys for r in curves[k]]
        label_keys = ["checkpoint", *report.varying_keys(rows, ("resolution", "tolerance"))]
        report.draw_curves(
            ax, report.curves_by(rows, label_keys), title=f"{dataset}: recall vs tokens"
        )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def compare(
    experiment: str,
    tracking_uri: str,
    output: str | Path = report.PLOT_FILE,
    datasets: list[str] | None = None,
    checkpoints: list[str] | None = None,
) -> tuple[str, Path | None, dict[tuple[Any, ...], list[dict[str, Any]]]]:
    """Query, tabulate and plot an evaluation experiment.

    Returns:
        (printed text, PNG path or None when there is nothing to plot, the curves).
    """
    rows = load_trial_rows(experiment, tracking_uri)
    if datasets:
        rows = [r for r in rows if r["dataset"] in datasets]
    if checkpoints:
        rows = [r for r in rows if r["checkpoint"] in checkpoints]
    curves = latest_curves(rows)
    if not curves:
        return f"no finished evaluation runs in experiment {experiment!r}", None, curves
    return format_comparison(curves), plot_comparison(curves, output), curves
