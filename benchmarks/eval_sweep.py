"""Cost of a 5-threshold Tune sweep vs a single-threshold evaluation (model passes counted, timed).

Same local Ray cluster, same generated SA-1B-format sample, same checkpoint and resolution; each
cold run gets its own empty probability cache, so each pays exactly one model pass. Runs:

* ``warmup``          - a 2-image, 1-threshold sweep (not compared): the first Ray Data and Tune
                        use of the process (imports, worker pool), so later runs are steady state.
* ``eval_1``          - ``run_evaluation`` with one threshold, cold cache (the baseline).
* ``sweep_1``         - ``run_sweep`` (Ray Tune) with one threshold, cold cache.
* ``sweep_5``         - ``run_sweep`` over 5 thresholds, cold cache. Target: wall <= 1.3 x
                        ``eval_1``.
* ``sweep_5_cached``  - the same sweep again on ``sweep_5``'s cache: no model pass.

All runs log to one sqlite MLflow store (a run per grid point + a summary run, no panels).
"Model pass" seconds are the wall time of ``build_cache`` (Ray Data read -> decode -> predictor
actor -> Parquet); the rest of a run is scoring, Tune and MLflow. Prints one JSON line per run
and a summary line; ``--markdown FILE`` appends a table. The 1-minute load average after each
run is printed too: on a shared box it says how much the figure is disturbed.

    .venv/bin/python benchmarks/eval_sweep.py --images 16 --resolution 256
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

THRESHOLDS = [0.1, 0.2, 0.3, 0.4, 0.5]


def _timed(name: str, fn, cfg) -> dict:
    from directsam.evaluation import cache as cache_mod

    cache_mod.reset_model_passes()
    start = time.perf_counter()
    result = fn(cfg)
    wall = time.perf_counter() - start
    passes = cache_mod.model_passes()
    row = {
        "run": name,
        "wall_s": round(wall, 2),
        "model_passes": int(passes["passes"]),
        "model_images": int(passes["images"]),
        "model_pass_s": round(passes["seconds"], 2),
        "rest_s": round(wall - passes["seconds"], 2),
        "grid_points": len(result.rows),
        "loadavg_1m": round(os.getloadavg()[0], 1),  # the box is shared: context for the figure
    }
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="scratch:b0")
    parser.add_argument("--images", type=int, default=16, help="sample images (all scored)")
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    parser.add_argument("--workdir", default=None, help="scratch folder (default: a temp dir)")
    parser.add_argument("--markdown", default=None, help="append a results table to this file")
    args = parser.parse_args()

    import ray

    from directsam.config import load_config
    from directsam.data.sample import make_sample
    from directsam.evaluation.config import EvalConfig, SweepConfig
    from directsam.evaluation.sweep import run_evaluation, run_sweep

    work = Path(args.workdir or tempfile.mkdtemp(prefix="eval_sweep_bench_"))
    sample = make_sample(work / "sample", num_images=args.images, seed=0, kind="sa1b")
    uri = f"sqlite:///{(work / 'mlflow.db').resolve()}"

    def cfg(cls, cache: str, thresholds: list[float], num_samples: int = args.images):
        values = {
            "checkpoint": args.checkpoint, "source.type": "sa1b", "source.input": str(sample),
            "source.dataset": "bench", "source.split": "all", "resolution": args.resolution,
            "source.num_samples": num_samples, "thresholds": thresholds,
            "batch_size": args.batch_size,
            "device": "cpu", "dtype": "fp32", "cache_dir": str(work / cache),
            "output": str(work / "out"), "tracking_uri": uri, "experiment": "bench-eval",
            "num_panels": 0,
        }  # fmt: skip
        return load_config(cls, values=values)

    # address="local": a fresh cluster even when another `ray start` cluster runs on this box.
    ray.init(address="local", num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        _timed("warmup", run_sweep, cfg(SweepConfig, "cache_warmup", [0.3], num_samples=2))
        one = _timed("eval_1", run_evaluation, cfg(EvalConfig, "cache_eval1", [0.3]))
        sweep1 = _timed("sweep_1", run_sweep, cfg(SweepConfig, "cache_sweep1", [0.3]))
        five = _timed("sweep_5", run_sweep, cfg(SweepConfig, "cache_sweep5", THRESHOLDS))
        cached = _timed("sweep_5_cached", run_sweep, cfg(SweepConfig, "cache_sweep5", THRESHOLDS))
    finally:
        ray.shutdown()

    summary = {
        "checkpoint": args.checkpoint,
        "images": args.images,
        "resolution": args.resolution,
        "num_cpus": args.num_cpus,
        "sweep5_over_eval1": round(five["wall_s"] / one["wall_s"], 3),
        "sweep5_over_sweep1": round(five["wall_s"] / sweep1["wall_s"], 3),
        "target": 1.3,
        "model_passes": {r["run"]: r["model_passes"] for r in (one, sweep1, five, cached)},
    }
    print(json.dumps(summary), flush=True)
    if args.markdown:
        lines = [
            "",
            f"### eval_sweep ({time.strftime('%Y-%m-%d')}, {platform.node()}, "
            f"{os.cpu_count()} cores visible, Ray num_cpus={args.num_cpus})",
            "",
            f"`.venv/bin/python benchmarks/eval_sweep.py --checkpoint {args.checkpoint} "
            f"--images {args.images} --resolution {args.resolution} --num-cpus {args.num_cpus}`",
            "",
            "| run | wall s | model passes | model-pass s | rest s | load avg 1m after |",
            "|---|---|---|---|---|---|",
            *(
                f"| {r['run']} | {r['wall_s']} | {r['model_passes']} | {r['model_pass_s']} | "
                f"{r['rest_s']} | {r['loadavg_1m']} |"
                for r in (one, sweep1, five, cached)
            ),
            "",
            f"sweep_5 / eval_1 wall = **{summary['sweep5_over_eval1']}** (target <= 1.3); "
            f"sweep_5 / sweep_1 wall = **{summary['sweep5_over_sweep1']}**",
        ]
        with open(args.markdown, "a") as fh:
            fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
