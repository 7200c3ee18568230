"""Threshold sweeps: cached probabilities -> Ray Tune grid of CPU trials -> MLflow runs + summary.

The model runs once per resolution (``build_cache``); every trial is a 1-CPU ``score_cache``
call. A driver-side Tune callback (:func:`trial_run_logger`) writes one MLflow run per trial;
the driver then adds a summary run with the recall-vs-tokens plot, results.csv and panels
(see :mod:`report`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from directsam.evaluation import report
from directsam.evaluation.config import EvalConfig, SweepConfig
from directsam.evaluation.evaluate import CacheResult, build_cache, score_cache
from directsam.metrics import table

if TYPE_CHECKING:
    from directsam.tracking.client import TrackingClient


@dataclass
class SweepResult:
    """What an evaluation or sweep produced."""

    sweep_id: str
    rows: list[dict[str, Any]]
    """One dict per grid point: ``report.RESULT_COLUMNS``."""
    caches: dict[int, CacheResult]
    """Probability cache per resolution."""
    output_dir: Path
    summary_run_id: str | None = None
    trial_run_ids: list[str] = field(default_factory=list)
    tracking_uri: str | None = None
    tracking_warning: str = ""
    """Set when MLflow records were spooled (the server was unreachable): where, and how to
    send them."""


def _score_trial(config: dict[str, Any], caches: dict[int, str]) -> None:
    """Tune trainable: one grid point scored from the cache; reports ``table.NAMES``."""
    from ray import tune

    metrics = score_cache(
        caches[int(config["resolution"])], float(config["threshold"]), int(config["tolerance"])
    )
    tune.report(metrics)


def _trial_name(trial: Any) -> str:
    """Tune trial (and MLflow run) name, as ``report.run_name`` names evaluate's runs."""
    return report.run_name(trial.config) + f"-{trial.trial_id}"


def trial_run_logger(tracking: TrackingClient, experiment: str, tags: dict[str, str]) -> Any:
    """A driver-side Tune ``LoggerCallback``: one MLflow run per trial (params ``PARAM_NAMES``,
    metrics ``table.NAMES``) in ``experiment``, tagged with ``tags`` plus ``directsam.kind=trial``.

    Replaces ``MLflowLoggerCallback``, which writes each param and each reported value (ours
    plus Tune's dozen bookkeeping fields) as its own store transaction, ~25 per trial; against
    a sqlite store that doubled a cached 5-threshold sweep's wall time. Here a trial is four
    writes (create, params, one metrics batch, terminate), each best effort through
    ``tracking`` (spooled when the server is gone).
    """
    import uuid

    from ray.tune.logger import LoggerCallback

    from directsam.tracking.client import RunRef

    class TrialRunLogger(LoggerCallback):
        def __init__(self) -> None:
            self._runs: dict[str, RunRef] = {}

        def log_trial_start(self, trial: Any) -> None:
            if trial.trial_id in self._runs:  # restarted trial: same run
                return
            row = {**trial.config}
            ref, _ = tracking.open_run(
                experiment,
                uuid.uuid4().hex,
                str(trial),
                params={k: row[k] for k in report.PARAM_NAMES},
                tags={**tags, report.TAG_KIND: report.KIND_TRIAL, "trial_name": str(trial)},
                reopen=False,
            )
            self._runs[trial.trial_id] = ref

        def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
            metrics = {k: result[k] for k in table.NAMES if k in result}
            tracking.log_metrics(self._runs[trial.trial_id], metrics, int(iteration))

        def run_ids(self) -> list[str]:
            return [ref.run_id for ref in self._runs.values() if ref.run_id]

        def log_trial_end(self, trial: Any, failed: bool = False) -> None:
            ref = self._runs.get(trial.trial_id)
            if ref is not None:
                tracking.end_run(ref, "FAILED" if failed else "FINISHED")

    return TrialRunLogger()


def _tracking(cfg: EvalConfig) -> TrackingClient | None:
    """The job's best-effort MLflow client (None when tracking is off); records the server does
    not take go to ``<output>/_mlflow_spool``."""
    if not cfg.tracking:
        return None
    from directsam.tracking import TrackingClient, resolve_tracking_uri
    from directsam.tracking.spool import spool_dir_beside

    uri = resolve_tracking_uri(cfg.tracking_uri)
    return TrackingClient(uri, spool_dir_beside(cfg.output, f"eval-{cfg.dataset_name()}"))


def tracking_warning(tracking: TrackingClient | None) -> str:
    """The one warning of a job whose MLflow records were spooled ("" when none were)."""
    if tracking is None or not tracking.spooled:
        return ""
    from directsam.tracking import spool_warning

    return spool_warning(tracking.spool_path, tracking.uri, tracking.reason(), tracking.spooled)


def tune_config(max_concurrent_trials: int) -> Any:
    """The sweep's ``tune.TuneConfig``: the table's objective as Tune's ``metric`` and ``mode``
    (so ``ResultGrid.get_best_result()`` picks the best threshold), one trial per CPU slot."""
    from ray import tune

    return tune.TuneConfig(
        metric=table.OBJECTIVE.name,
        mode=table.OBJECTIVE.mode,
        max_concurrent_trials=max_concurrent_trials,
        reuse_actors=True,
        trial_name_creator=_trial_name,
    )


def _grid_param(values: list[Any]) -> Any:
    from ray import tune

    return tune.grid_search(values) if len(values) > 1 else values[0]


def run_sweep(cfg: SweepConfig) -> SweepResult:
    """Build the caches, run the Tune grid, log trials and a summary run to MLflow.

    Needs an initialised Ray. Raises ``RuntimeError`` when a trial fails.
    """
    import ray
    from ray import tune

    caches = {res: build_cache(cfg.at_resolution(res)) for res in cfg.resolution_grid()}
    first = caches[cfg.resolution_grid()[0]]
    sha = first.manifest["spec"]["checkpoint_sha"]
    dataset = cfg.dataset_name()
    sweep_id = report.new_sweep_id(f"{dataset}-sweep")
    tracking = _tracking(cfg)
    tags = report.run_tags(report.KIND_TRIAL, sweep_id, cfg.checkpoint, dataset, sha)

    logger = None
    if tracking is not None:
        logger = trial_run_logger(tracking, cfg.experiment, tags)
    cpus = float(ray.cluster_resources().get("CPU", 1))
    concurrency = cfg.max_concurrent_trials or max(1, int(cpus // cfg.cpus_per_trial))
    storage = cfg.storage_path or os.path.join(cfg.output, "ray_results")
    if "://" not in storage:
        storage = os.path.abspath(storage)
    trainable = tune.with_resources(
        tune.with_parameters(_score_trial, caches={r: c.location for r, c in caches.items()}),
        {"cpu": cfg.cpus_per_trial},
    )
    tuner = tune.Tuner(
        trainable,
        # Only real parameters: each trial's MLflow run logs them as its params.
        param_space={
            "threshold": tune.grid_search(list(cfg.thresholds)),
            "tolerance": _grid_param(cfg.tolerance_grid()),
            "resolution": _grid_param(cfg.resolution_grid()),
            "checkpoint": cfg.checkpoint,
            "dataset": dataset,
        },
        tune_config=tune_config(concurrency),
        run_config=tune.RunConfig(
            name=sweep_id, storage_path=storage, callbacks=[logger] if logger else [], verbose=0
        ),
    )
    grid = tuner.fit()
    if grid.errors:
        raise RuntimeError(
            f"sweep {sweep_id}: {len(grid.errors)} trial(s) failed: {grid.errors[0]}"
        )
    rows = []
    for result in grid:
        conf = result.config
        rows.append(
            {
                "checkpoint": cfg.checkpoint,
                "dataset": dataset,
                "resolution": int(conf["resolution"]),
                "threshold": float(conf["threshold"]),
                "tolerance": int(conf["tolerance"]),
                **{k: float(result.metrics[k]) for k in table.NAMES},
            }
        )
    out, summary_id = report.publish(
        cfg, report.sort_rows(rows), sweep_id, sha, first.location, tracking
    )
    trial_ids = logger.run_ids() if logger else []
    uri = tracking.uri if tracking else None
    return SweepResult(
        sweep_id, report.sort_rows(rows), caches, out, summary_id, trial_ids, uri,
        tracking_warning(tracking),
    )  # fmt: skip


def run_evaluation(cfg: EvalConfig) -> SweepResult:
    """Build (or reuse) the cache, score every threshold on parallel Ray CPU tasks, and log
    one MLflow run per threshold plus a summary run (same layout as :func:`run_sweep`)."""
    import ray

    cache = build_cache(cfg)
    sha = cache.manifest["spec"]["checkpoint_sha"]
    dataset = cfg.dataset_name()
    score = ray.remote(num_cpus=1)(score_cache)
    pending = [score.remote(cache.location, t, cfg.tolerance) for t in cfg.thresholds]
    rows = [
        {"checkpoint": cfg.checkpoint, "dataset": dataset, "resolution": cfg.resolution,
         "threshold": float(t), "tolerance": cfg.tolerance, **metrics}
        for t, metrics in zip(cfg.thresholds, ray.get(pending))
    ]  # fmt: skip
    rows = report.sort_rows(rows)
    sweep_id = report.new_sweep_id(f"{dataset}-eval")
    tracking = _tracking(cfg)
    trial_ids: list[str] = []
    if tracking is not None:
        tags = report.run_tags(report.KIND_TRIAL, sweep_id, cfg.checkpoint, dataset, sha)
        trial_ids = report.log_trial_runs(tracking, cfg.experiment, rows, tags)
    out, summary_id = report.publish(cfg, rows, sweep_id, sha, cache.location, tracking)
    uri = tracking.uri if tracking else None
    return SweepResult(
        sweep_id, rows, {cfg.resolution: cache}, out, summary_id, trial_ids, uri,
        tracking_warning(tracking),
    )  # fmt: skip
