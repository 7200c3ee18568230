"""Evaluation results -> results.csv, the recall-vs-tokens plot and MLflow runs.

Shared by ``evaluate`` (scores on Ray tasks), ``sweep`` (scores in Tune trials) and ``compare``.
MLflow layout: one run per (threshold, tolerance, resolution) tagged ``directsam.kind=trial``
and one ``directsam.kind=summary`` run holding ``recall_vs_tokens.png``, ``results.csv`` and
``panels/``; the tags ``directsam.sweep_id``, ``directsam.checkpoint`` and ``directsam.dataset``
link them.
"""

from __future__ import annotations

import csv
import math
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from directsam.metrics import table

if TYPE_CHECKING:
    from directsam.tracking.client import TrackingClient

TAG_KIND = "directsam.kind"
TAG_SWEEP = "directsam.sweep_id"
TAG_CHECKPOINT = "directsam.checkpoint"
TAG_DATASET = "directsam.dataset"
TAG_CHECKPOINT_SHA = "directsam.checkpoint_sha"
TAG_CACHE = "directsam.cache"
KIND_TRIAL = "trial"
KIND_SUMMARY = "summary"

PARAM_NAMES = ("checkpoint", "dataset", "resolution", "threshold", "tolerance")
RESULT_COLUMNS = (*PARAM_NAMES, *table.NAMES)
# Metric columns of the printed table: metric (name, decimals), header, width.
TABLE_COLUMNS = (
    (table.MEAN_NUM_TOKENS, "tokens", 9),
    (table.MEAN_RECALL, "recall", 7),
    (table.MEAN_PRECISION, "precision", 9),
    (table.MEAN_F1, "f1", 6),
    (table.NUM_IMAGES, "images", 6),
    (table.NUM_SKIPPED, "skipped", 7),
)
PLOT_FILE = "recall_vs_tokens.png"
CSV_FILE = "results.csv"
PANELS_DIR = "panels"


def new_sweep_id(prefix: str) -> str:
    """``<prefix>-<UTC yyyymmddThhmmss>-<6 hex>``: sortable and unique per evaluation/sweep."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    return f"{prefix}-{stamp}-{uuid.uuid4().hex[:6]}"


def run_tags(
    kind: str, sweep_id: str, checkpoint: str, dataset: str, checkpoint_sha: str
) -> dict[str, str]:
    """The tags every evaluation run carries."""
    return {
        TAG_KIND: kind,
        TAG_SWEEP: sweep_id,
        TAG_CHECKPOINT: checkpoint,
        TAG_DATASET: dataset,
        TAG_CHECKPOINT_SHA: checkpoint_sha,
    }


def run_name(row: dict[str, Any]) -> str:
    """``<dataset>-r<R>-tol<T>-t<threshold>``: the name of one grid point's run."""
    return (
        f"{row['dataset']}-r{row['resolution']}-tol{row['tolerance']}-t{float(row['threshold']):g}"
    )


def sort_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Result rows ordered by checkpoint, dataset, resolution, tolerance, threshold."""
    keys = ("checkpoint", "dataset", "resolution", "tolerance", "threshold")
    return sorted(
        rows,
        key=lambda r: tuple(
            str(r[k]) if k in ("checkpoint", "dataset") else float(r[k]) for k in keys
        ),
    )


def write_results_csv(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Write result rows (``RESULT_COLUMNS``) to ``path``; returns it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(RESULT_COLUMNS), extrasaction="ignore")
        writer.writeheader()
        for row in sort_rows(rows):
            writer.writerow({k: row.get(k) for k in RESULT_COLUMNS})
    return path


def curves_by(
    rows: Iterable[dict[str, Any]], label_keys: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    """Group rows into curves labelled by ``label_keys`` values, each sorted by threshold."""
    curves: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        label = ", ".join(
            f"{row[k]}" if k in ("checkpoint", "dataset") else f"{k}={row[k]}" for k in label_keys
        )
        curves[label or "results"].append(row)
    return {k: sorted(v, key=lambda r: float(r["threshold"])) for k, v in sorted(curves.items())}


def draw_curves(ax: Any, curves: dict[str, list[dict[str, Any]]], title: str = "") -> None:
    """Draw one line per curve on a matplotlib ``ax``: x = mean tokens, y = mean effective
    contour recall, each point annotated with its threshold."""
    tokens, recall = table.MEAN_NUM_TOKENS.name, table.MEAN_RECALL.name
    for label, rows in curves.items():
        pts = [(float(r[tokens]), float(r[recall]), float(r["threshold"])) for r in rows]
        pts = [p for p in pts if not (math.isnan(p[0]) or math.isnan(p[1]))]
        if not pts:
            continue
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
        for x, y, t in pts:
            ax.annotate(f"{t:g}", (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7)
    ax.set_xlabel("mean number of tokens")
    ax.set_ylabel("mean effective contour recall")
    ax.set_title(title or "recall vs tokens (labels: threshold)", fontsize=9)
    ax.grid(True, alpha=0.3)
    if curves:
        ax.legend(fontsize=7)


def new_figure(num_axes: int = 1) -> tuple[Any, list[Any]]:
    """An Agg ``Figure`` (no pyplot state) with ``num_axes`` side-by-side axes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4 * num_axes, 4.8), dpi=100)
    axes = [fig.add_subplot(1, num_axes, i + 1) for i in range(num_axes)]
    return fig, axes


def plot_recall_vs_tokens(curves: dict[str, list[dict[str, Any]]], title: str = "") -> Any:
    """A one-axes figure of ``curves`` (see :func:`draw_curves`); returns the ``Figure``."""
    fig, (ax,) = new_figure(1)
    draw_curves(ax, curves, title)
    fig.tight_layout()
    return fig


def save_plot(
    rows: Sequence[dict[str, Any]], label_keys: Sequence[str], path: str | Path, title: str = ""
) -> Path:
    """Plot ``rows`` grouped by ``label_keys`` to a PNG at ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = plot_recall_vs_tokens(curves_by(rows, label_keys), title)
    fig.savefig(path)
    return path


def varying_keys(rows: Sequence[dict[str, Any]], candidates: Sequence[str]) -> list[str]:
    """The candidate keys whose value differs between rows (what distinguishes the curves)."""
    return [k for k in candidates if len({str(r[k]) for r in rows}) > 1]


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """Plain-text table ``threshold / tokens / recall`` (+ precision, F1, images, skipped)."""
    header = [f"{'threshold':>9}", *(f"{head:>{w}}" for _, head, w in TABLE_COLUMNS)]
    lines = ["  ".join(header)]
    for r in sorted(rows, key=lambda r: float(r["threshold"])):
        cells = [table.format_value(r.get(m.name), m.digits, w) for m, _, w in TABLE_COLUMNS]
        lines.append("  ".join([f"{float(r['threshold']):>9.3g}", *cells]))
    return "\n".join(lines)


def log_trial_runs(
    tracking: TrackingClient | str,
    experiment: str,
    rows: Sequence[dict[str, Any]],
    tags: dict[str, str],
) -> list[str]:
    """One FINISHED MLflow run per result row (params ``PARAM_NAMES``, metrics ``table.NAMES``) in
    ``experiment``; returns the ids of the runs the server took (spooled ones have none yet)."""
    from directsam.tracking.client import as_client

    client = as_client(tracking)
    run_ids = []
    now = int(time.time() * 1000)
    for row in sort_rows(rows):
        ref, _ = client.open_run(
            experiment,
            uuid.uuid4().hex,
            run_name(row),
            params={k: row[k] for k in PARAM_NAMES},
            tags={**tags, TAG_KIND: KIND_TRIAL},
            reopen=False,
        )
        client.log_metrics(ref, {k: row[k] for k in table.NAMES}, 0, now)
        client.end_run(ref, "FINISHED")
        if ref.run_id:
            run_ids.append(ref.run_id)
    return run_ids


def log_summary_run(
    tracking: TrackingClient | str,
    experiment: str,
    tags: dict[str, str],
    params: dict[str, Any],
    output_dir: str | Path,
    run_name: str,
) -> str | None:
    """A FINISHED summary run with ``params`` and everything in ``output_dir`` as artifacts;
    returns its id (None when it was spooled)."""
    from directsam.tracking.client import as_client

    client = as_client(tracking)
    ref, _ = client.open_run(
        experiment, uuid.uuid4().hex, run_name, params, {**tags, TAG_KIND: KIND_SUMMARY}, False
    )
    client.log_artifact(ref, output_dir)
    client.end_run(ref, "FINISHED")
    return ref.run_id


def publish(
    cfg: Any,
    rows: Sequence[dict[str, Any]],
    sweep_id: str,
    checkpoint_sha: str,
    cache_location: str,
    tracking: TrackingClient | None,
) -> tuple[Path, str | None]:
    """Write ``<cfg.output>/<sweep_id>/`` (results.csv, the plot, panels/) and, when tracking,
    a summary run holding them. Returns (output folder, summary run id or None).

    Args:
        cfg: the job's ``EvalConfig``/``SweepConfig``; panels use its resolution's cache.
        tracking: the job's MLflow client (None: tracking off).
    """
    from directsam.config import flatten
    from directsam.tracking import lineage

    dataset = cfg.dataset_name()
    out = Path(cfg.output) / sweep_id
    write_results_csv(rows, out / CSV_FILE)
    label_keys = varying_keys(rows, ("resolution", "tolerance")) or ["checkpoint"]
    save_plot(rows, label_keys, out / PLOT_FILE, title=f"{cfg.checkpoint} on {dataset}")
    if cfg.num_panels > 0:
        from directsam.evaluation.panels import write_panels

        write_panels(
            cache_location, out / PANELS_DIR, cfg.panel_at(), cfg.tolerance, cfg.num_panels
        )
    if tracking is None:
        return out, None
    tags = run_tags(KIND_SUMMARY, sweep_id, cfg.checkpoint, dataset, checkpoint_sha)
    tags[TAG_CACHE] = cache_location
    params = {
        **flatten(cfg),
        "dataset": dataset,
        "checkpoint_sha": checkpoint_sha,
        **{f"lineage.{k}": v for k, v in lineage().items()},
    }
    return out, log_summary_run(tracking, cfg.experiment, tags, params, out, run_name=sweep_id)
