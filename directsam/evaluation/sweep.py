"""Threshold sweeps: cached probabilities -> Ray Tune grid of CPU trials -> MLflow runs + summary.

The model runs once per resolution (``build_cache``); every trial is a 1-CPU ``score_cache``
call. A driver-side Tune callback (:func:`trial_run_logger`) writes one MLflow run per trial;
the driver then adds a summary run with the recall-vs-tokens plot, results.csv and panels
(see :mod:`report`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from directsam.evaluation import report
from directsam.evaluation.config import EvalConfig, SweepConfig
from directsam.evaluation.evaluate import CacheResult, build_cache, score_cache
from directsam.metrics import table


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


def trial_run_logger(tracking_uri: str, experiment_id: str, tags: dict[str, str]) -> Any:
    """A driver-side Tune ``LoggerCallback``: one MLflow run per trial (params ``PARAM_NAMES``,
    metrics ``table.NAMES``), tagged with ``tags`` plus ``directsam.kind=trial``.

    Replaces ``MLflowLoggerCallback``, which writes each param and each reported value (ours
    plus Tune's dozen bookkeeping fields) as its own store transaction, ~25 per trial; against
    a sqlite store that doubled a cached 5-threshold sweep's wall time. Here a trial is three
    writes: create the run with params, one metrics batch, terminate.
    """
    import time

    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient
    from ray.tune.logger import LoggerCallback

    class TrialRunLogger(LoggerCallback):
        def __init__(self) -> None:
            self._runs: dict[str, str] = {}
            self._client: Any = None

        def _mlflow(self) -> Any:
            if self._client is None:
                self._client = MlflowClient(tracking_uri=tracking_uri)
            return self._client

        def log_trial_start(self, trial: Any) -> None:
            if trial.trial_id in self._runs:  # restarted trial: same run
                return
            row = {**trial.config}
            run = self._mlflow().create_run(
                experiment_id,
                run_name=str(trial),
                tags={**tags, report.TAG_KIND: report.KIND_TRIAL, "trial_name": str(trial)},
            )
            self._mlflow().log_batch(
                run.info.run_id, params=[Param(k, str(row[k])) for k in report.PARAM_NAMES]
            )
            self._runs[trial.trial_id] = run.info.run_id

        def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
            now = int(time.time() * 1000)
            metrics = [
                Metric(k, float(result[k]), now, int(iteration))
                for k in table.NAMES
                if k in result and not math.isnan(float(result[k]))
            ]
            self._mlflow().log_batch(self._runs[trial.trial_id], metrics=metrics)

        def run_ids(self) -> list[str]:
            return list(self._runs.values())

        def log_trial_end(self, trial: Any, failed: bool = False) -> None:
            run_id = self._runs.get(trial.trial_id)
            if run_id is not None:
                self._mlflow().set_terminated(run_id, "FAILED" if failed else "FINISHED")

    return TrialRunLogger()


def _tracking(cfg: EvalConfig) -> tuple[str | None, str | None]:
    """(tracking URI, experiment id), both None when tracking is off."""
    if not cfg.tracking:
        return None, None
    from directsam.tracking import check_reachable, ensure_experiment, resolve_tracking_uri

    uri = resolve_tracking_uri(cfg.tracking_uri)
    check_reachable(uri)
    # Created up front with an explicit artifact location (MLflow would otherwise put artifacts
    # under ./mlruns of the driver's working directory).
    return uri, ensure_experiment(cfg.experiment, uri)


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
    uri, experiment_id = _tracking(cfg)
    tags = report.run_tags(report.KIND_TRIAL, sweep_id, cfg.checkpoint, dataset, sha)

    logger = None
    if uri is not None and experiment_id is not None:
        logger = trial_run_logger(uri, experiment_id, tags)
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
        cfg, report.sort_rows(rows), sweep_id, sha, first.location, uri, experiment_id
    )
    trial_ids = logger.run_ids() if logger else []
    return SweepResult(sweep_id, report.sort_rows(rows), caches, out, summary_id, trial_ids, uri)


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
    uri, experiment_id = _tracking(cfg)
    trial_ids: list[str] = []
    if uri is not None and experiment_id is not None:
        tags = report.run_tags(report.KIND_TRIAL, sweep_id, cfg.checkpoint, dataset, sha)
        trial_ids = report.log_trial_runs(uri, experiment_id, rows, tags)
    out, summary_id = report.publish(cfg, rows, sweep_id, sha, cache.location, uri, experiment_id)
    return SweepResult(sweep_id, rows, {cfg.resolution: cache}, out, summary_id, trial_ids, uri)
