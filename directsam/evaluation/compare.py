"""MLflow evaluation runs -> a table per (checkpoint, dataset) and a recall-vs-tokens plot.

Replaces the seed's notebook that collected per-run CSVs by hand: trial runs (tag
``directsam.kind=trial``, written by ``evaluate`` and ``sweep``) are queried, each curve
(checkpoint, dataset, resolution, tolerance) is taken from the most recent sweep that measured
it, and the plot has one axes per dataset with one curve per checkpoint.

``--wide`` prints one ``threshold x checkpoint`` table (mean recall, mean tokens) per dataset
instead, with the checkpoints as columns in the order they were named (``--checkpoint``) and
named by ``--label SPEC=NAME``; ``--log-run`` stores the table, its CSV and the plot in a
``directsam.kind=comparison`` run of the same experiment (never read back as a trial).
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from directsam.evaluation import report
from directsam.metrics import table

CURVE_KEYS = ("checkpoint", "dataset", "resolution", "tolerance")
KIND_COMPARISON = "comparison"
TABLE_FILE = "comparison.txt"
WIDE_CSV_FILE = "comparison.csv"


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


def plot_comparison(
    curves: dict[tuple[Any, ...], list[dict[str, Any]]],
    path: str | Path,
    labels: dict[str, str] | None = None,
) -> Path:
    """PNG with one axes per dataset and one curve per checkpoint (plus res/tol when they vary).

    ``labels`` maps a checkpoint spec to the name its curve carries (default: the spec).
    """
    by_dataset: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for key in curves:
        by_dataset[key[1]].append(key)
    fig, axes = report.new_figure(max(1, len(by_dataset)))
    for ax, (dataset, keys) in zip(axes, sorted(by_dataset.items())):
        rows = [
            {**r, "checkpoint": (labels or {}).get(r["checkpoint"], r["checkpoint"])}
            for k in keys
            for r in curves[k]
        ]
        label_keys = ["checkpoint", *report.varying_keys(rows, ("resolution", "tolerance"))]
        report.draw_curves(
            ax, report.curves_by(rows, label_keys), title=f"{dataset}: recall vs tokens"
        )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def column_order(
    curves: dict[tuple[Any, ...], list[dict[str, Any]]], checkpoints: list[str] | None
) -> list[str]:
    """Checkpoints in the order the user named them, then any others sorted."""
    found = {key[0] for key in curves}
    named = [c for c in dict.fromkeys(checkpoints or []) if c in found]
    return named + sorted(found - set(named))


def wide_tables(
    curves: dict[tuple[Any, ...], list[dict[str, Any]]], checkpoints: list[str] | None = None
) -> dict[tuple[Any, ...], dict[float, dict[str, dict[str, Any]]]]:
    """Regroup curves as ``(dataset, resolution, tolerance) -> threshold -> checkpoint -> row``.

    Columns follow ``checkpoints`` (see :func:`column_order`); a checkpoint missing a threshold
    another one has simply has no cell there.
    """
    order = {c: i for i, c in enumerate(column_order(curves, checkpoints))}
    tables: dict[tuple[Any, ...], dict[float, dict[str, dict[str, Any]]]] = {}
    for key in sorted(curves, key=lambda k: (str(k[1]), k[2], k[3], order[k[0]])):
        ckpt, dataset, res, tol = key
        table = tables.setdefault((dataset, res, tol), {})
        for row in curves[key]:
            table.setdefault(float(row["threshold"]), {})[ckpt] = row
    return {group: {t: table[t] for t in sorted(table)} for group, table in tables.items()}


def format_wide(
    curves: dict[tuple[Any, ...], list[dict[str, Any]]],
    checkpoints: list[str] | None = None,
    labels: dict[str, str] | None = None,
) -> str:
    """One ``threshold x checkpoint`` table (mean recall, mean tokens) per dataset/res/tol.

    Each table is followed by its legend: column name = checkpoint spec, the sweep that
    measured it and the number of images scored.
    """
    labels = labels or {}
    blocks = []
    for (dataset, res, tol), by_threshold in wide_tables(curves, checkpoints).items():
        cols = [c for c in column_order(curves, checkpoints) if (c, dataset, res, tol) in curves]
        names = [labels.get(c, c) for c in cols]
        width = max(15, *(len(n) for n in names))
        lines = [
            f"dataset {dataset} | {res} px | tolerance {tol} | mean effective contour recall "
            "and mean number of tokens per image",
            f"{'':>9}" + "".join(f"  {n:>{width}}" for n in names),
            f"{'threshold':>9}"
            + "".join(f"  {'recall':>{width - 8}}  {'tokens':>6}" for _ in cols),
        ]
        for threshold, cells in by_threshold.items():
            line = f"{threshold:>9.3g}"
            for c in cols:
                row = cells.get(c, {})  # a checkpoint without this threshold: "-" cells
                recall = table.format_value(row.get(table.MEAN_RECALL.name), 3, width - 8)
                tokens = table.format_value(row.get(table.MEAN_NUM_TOKENS.name), 1, 6)
                line += f"  {recall}  {tokens}"
            lines.append(line)
        for c, name in zip(cols, names):
            first = curves[(c, dataset, res, tol)][0]
            images = table.format_value(first.get(table.NUM_IMAGES.name), 0)
            alias = f"{name} = " if name != c else ""
            lines.append(f"  {alias}{c} (sweep {first['sweep_id']}, {images} images)")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def write_wide_csv(
    curves: dict[tuple[Any, ...], list[dict[str, Any]]],
    path: str | Path,
    checkpoints: list[str] | None = None,
    labels: dict[str, str] | None = None,
) -> Path:
    """The wide tables as CSV: one row per (dataset, resolution, tolerance, threshold,
    checkpoint) with ``label``, ``mean_recall``, ``mean_num_tokens``, ``num_images``, ``sweep_id``."""
    import csv

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metrics = [m.name for m in (table.MEAN_RECALL, table.MEAN_NUM_TOKENS, table.NUM_IMAGES)]
    fields = ["dataset", "resolution", "tolerance", "threshold", "checkpoint", "label",
              *metrics, "sweep_id"]  # fmt: skip
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for by_threshold in wide_tables(curves, checkpoints).values():
            for cells in by_threshold.values():
                for ckpt, row in cells.items():
                    label = (labels or {}).get(ckpt, ckpt)
                    writer.writerow({**row, "label": label})
    return path


def save_comparison(
    text: str,
    curves: dict[tuple[Any, ...], list[dict[str, Any]]],
    plot: str | Path,
    checkpoints: list[str] | None = None,
    labels: dict[str, str] | None = None,
) -> list[Path]:
    """Write the printed ``text`` (``comparison.txt``) and the wide CSV beside ``plot``."""
    folder = Path(plot).parent
    folder.mkdir(parents=True, exist_ok=True)
    table = folder / TABLE_FILE
    table.write_text(text + "\n")
    return [table, write_wide_csv(curves, folder / WIDE_CSV_FILE, checkpoints, labels)]


def log_comparison_run(
    experiment: str,
    tracking_uri: str,
    files: list[Path],
    checkpoints: list[str],
    labels: dict[str, str] | None = None,
) -> tuple[str | None, str]:
    """A FINISHED ``directsam.kind=comparison`` run in ``experiment`` holding ``files``.

    Params: the compared checkpoints (``checkpoint.<i>``) and their labels (``label.<i>``).
    ``load_trial_rows`` reads only trial runs, so a comparison run never feeds a later one.
    Written through the best-effort tracking client: when the server is gone the records go to
    a spool beside the first file (``directsam tracking replay`` sends them later).

    Returns:
        (the run id, or None when it was spooled; the one-line spool warning, or "").
    """
    import uuid

    from directsam.tracking import TrackingClient, spool_warning
    from directsam.tracking.spool import spool_dir_beside

    out_dir = str(Path(files[0]).resolve().parent) if files else "."
    tracking = TrackingClient(tracking_uri, spool_dir_beside(out_dir, "compare"))
    params = {}
    for i, ckpt in enumerate(checkpoints):
        params[f"checkpoint.{i}"] = ckpt
        params[f"label.{i}"] = (labels or {}).get(ckpt, ckpt)
    ref, _ = tracking.open_run(
        experiment,
        uuid.uuid4().hex,
        f"compare-{len(checkpoints)}-checkpoints",
        params=params,
        tags={report.TAG_KIND: KIND_COMPARISON},
        reopen=False,
    )
    for f in files:
        tracking.log_artifact(ref, f)
    tracking.end_run(ref, "FINISHED")
    warning = ""
    if tracking.spooled:
        warning = spool_warning(
            tracking.spool_path, tracking.uri, tracking.reason(), tracking.spooled
        )
    return ref.run_id, warning


def compare(
    experiment: str,
    tracking_uri: str,
    output: str | Path = report.PLOT_FILE,
    datasets: list[str] | None = None,
    checkpoints: list[str] | None = None,
    wide: bool = False,
    labels: dict[str, str] | None = None,
) -> tuple[str, Path | None, dict[tuple[Any, ...], list[dict[str, Any]]]]:
    """Query, tabulate and plot an evaluation experiment.

    Args:
        wide: one ``threshold x checkpoint`` table per dataset (:func:`format_wide`) instead of
            one table per curve.
        labels: checkpoint spec -> display name (table columns and plot legend).

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
    text = format_wide(curves, checkpoints, labels) if wide else format_comparison(curves)
    return text, plot_comparison(curves, output, labels), curves
