"""The end-to-end demo: sample -> stage 1 -> stage 2 -> stage 3 -> threshold sweep, on one CPU box.

``bash scripts/demo.sh`` installs the project and runs ``python -m directsam.demo``. Every stage
is the real job, called through the same flags as its CLI (``directsam pretrain | label |
self-train | sweep``) inside one local Ray cluster started in this process, and every stage
logs to one sqlite MLflow store::

    OUT/sample/        generated SA-1B-format images + annotations (directsam make-sample)
    OUT/runs/          stage 1 and stage 3 Ray Train runs and their checkpoints
    OUT/labels/        stage 2 Parquet shards (OUT/labels/<dataset>/gen-<sha>/part-*.parquet)
    OUT/eval/          sweep results.csv, recall_vs_tokens.png, panels
    OUT/eval_cache/    cached probabilities of the stage 3 checkpoint
    OUT/mlflow.db      MLflow runs of all four stages; artifacts under OUT/mlartifacts/

The models are random-init SegFormer-B0 at 128 px trained for a few steps: the demo shows the
plumbing, not accuracy.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
#: Side of the square model input in every stage (a multiple of 32; small so CPUs cope).
RESOLUTION = 128
#: Dataset name of the generated sample (shard folder, MLflow tag).
DATASET = "demo"


@dataclass
class DemoResult:
    """Where the demo put things, and how long each stage took (seconds)."""

    output: Path
    tracking_uri: str
    sample: Path
    stage1_checkpoint: str = ""
    shards: str = ""
    stage3_checkpoint: str = ""
    eval_output: str = ""
    mlflow_runs: dict[str, str] = field(default_factory=dict)
    """Stage -> MLflow run id (the sweep's summary run)."""
    timings: dict[str, float] = field(default_factory=dict)
    sweep_rows: list[dict[str, Any]] = field(default_factory=list)
    dashboard: str = ""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _at_end(steps: int) -> list[str]:
    """Overrides: validate and checkpoint once, after the last step (each pass costs seconds)."""
    return ["--set", f"validation.every_steps={steps}", "--set", f"checkpoint.every_steps={steps}"]


def _config(name: str) -> str:
    return str(REPO / "configs" / "smoke" / name)


def _timed(result: DemoResult, stage: str, log: Callable[[str], None]) -> Any:
    class _Timer:
        def __enter__(self) -> None:
            log(f"\n=== {stage} ===")
            self.start = time.perf_counter()

        def __exit__(self, *exc: object) -> None:
            result.timings[stage] = round(time.perf_counter() - self.start, 1)
            if exc[0] is None:
                log(f"=== {stage}: done in {result.timings[stage]:.0f} s ===")

    return _Timer()


def _train(stage: str, argv: list[str], log: Callable[[str], None]) -> dict[str, Any]:
    from directsam.training import cli

    parser = argparse.ArgumentParser(prog=stage)
    cli.add_train_args(parser, stage)
    cmd = "pretrain" if stage == "pretrain" else "self-train"
    log("equivalent: directsam " + cmd + " " + shlex.join(argv))
    return cli.run_job(cli.build_config(parser.parse_args(argv), stage))


def _label(argv: list[str], log: Callable[[str], None]) -> dict[str, Any]:
    from directsam.labeling import cli

    parser = argparse.ArgumentParser(prog="label")
    cli.add_label_args(parser)
    log("equivalent: directsam label " + shlex.join(argv))
    return cli.run_job(cli.build_config(parser.parse_args(argv)), log=log)


def _sweep(argv: list[str], log: Callable[[str], None]) -> None:
    from directsam.evaluation.cli import sweep_main

    log("equivalent: directsam sweep " + shlex.join(argv))
    code = sweep_main(argv)
    if code != 0:
        raise RuntimeError(f"the threshold sweep failed (exit {code})")


def run_demo(
    output: str | Path = "demo_out",
    *,
    num_images: int = 8,
    pretrain_steps: int = 8,
    self_train_steps: int = 4,
    thresholds: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5),
    num_cpus: int = 2,
    log: Callable[[str], None] = print,
) -> DemoResult:
    """Run the four stages into ``output``; raises on the first stage that fails.

    Starts a local Ray cluster (``num_cpus`` CPUs, no dashboard) unless Ray is already
    initialised, and shuts it down at the end only if it started it.
    """
    import ray

    from directsam.data.sample import make_sample

    out = Path(output).resolve()
    out.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{out / 'mlflow.db'}"
    result = DemoResult(output=out, tracking_uri=uri, sample=out / "sample")
    common = ["--tracking-uri", uri]

    with _timed(result, "sample", log):
        make_sample(result.sample, num_images=num_images, seed=0, kind="sa1b")
        log(f"{num_images} SA-1B-format images in {result.sample}")

    started = not ray.is_initialized()
    with _timed(result, "ray start", log):
        if started:
            # address="local": always a new cluster of our own, even when another Ray runs
            # on this machine (a bare ray.init() would attach to that one).
            # The dashboard (127.0.0.1 only) serves the state API that Ray Train's
            # placement-group cleaner polls; RAY_API_SERVER_ADDRESS points every worker at
            # this cluster's, not at whichever other local cluster auto-detection finds.
            result.dashboard = f"http://127.0.0.1:{_free_port()}"
            ray.init(
                address="local",
                num_cpus=num_cpus,
                include_dashboard=True,
                dashboard_host="127.0.0.1",
                dashboard_port=int(result.dashboard.rsplit(":", 1)[1]),
                object_store_memory=300 * 1024 * 1024,
                runtime_env={"env_vars": {"RAY_API_SERVER_ADDRESS": result.dashboard}},
            )
            log(f"local Ray cluster, dashboard {result.dashboard} (while the demo runs)")
    try:
        with _timed(result, "stage 1: pretrain", log):
            s1 = _train("pretrain", [
                "--config", _config("pretrain.yaml"), "--data", str(result.sample),
                "--dataset", DATASET, "--init", "scratch:b0",
                "--max-steps", str(pretrain_steps), "--storage-path", str(out / "runs"),
                "--set", f"data.resolution={RESOLUTION}", *_at_end(pretrain_steps), *common,
            ], log)  # fmt: skip
            result.stage1_checkpoint = str(s1["checkpoint"])
            result.mlflow_runs["pretrain"] = str(s1["mlflow_run_id"])

        with _timed(result, "stage 2: pseudo-label", log):
            s2 = _label([
                "--config", _config("pseudo_label.yaml"), "--source", "sa1b",
                "--input", str(result.sample), "--dataset", DATASET,
                "--output", str(out / "labels"), "--checkpoint", result.stage1_checkpoint,
                "--resolution", str(RESOLUTION), "--set", "tracking.enabled=true", *common,
            ], log)  # fmt: skip
            if not s2.get("complete") or not s2.get("num_good"):
                raise RuntimeError(f"pseudo-labeling wrote no complete generation: {s2}")
            result.shards = str(s2["generation"])
            _record_label_run(result, uri)

        with _timed(result, "stage 3: self-train", log):
            s3 = _train("self_train", [
                "--config", _config("self_train.yaml"), "--data", str(out / "labels"),
                "--init", result.stage1_checkpoint, "--max-steps", str(self_train_steps),
                "--storage-path", str(out / "runs"), "--set", "optim.grad_accum=1",
                "--set", f"data.resolution={RESOLUTION}", *_at_end(self_train_steps), *common,
            ], log)  # fmt: skip
            result.stage3_checkpoint = str(s3["checkpoint"])
            result.mlflow_runs["self_train"] = str(s3["mlflow_run_id"])

        with _timed(result, "threshold sweep", log):
            result.eval_output = str(out / "eval")
            _sweep([
                "--config", _config("sweep.yaml"), "--checkpoint", result.stage3_checkpoint,
                "--source", "sa1b", "--input", str(result.sample), "--dataset", DATASET,
                "--split", "all", "--num-samples", str(num_images),
                "--resolution", str(RESOLUTION),
                "--thresholds", ",".join(f"{t:g}" for t in thresholds),
                "--cache-dir", str(out / "eval_cache"), "--output", result.eval_output,
                "--experiment", "directsam-eval", *common,
            ], log)  # fmt: skip
            _record_sweep(result, uri)
    finally:
        if started:
            ray.shutdown()
    return result


def _record_label_run(result: DemoResult, uri: str) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("directsam-label")
    if exp is not None:
        runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"])
        if runs:
            result.mlflow_runs["label"] = runs[0].info.run_id


def _record_sweep(result: DemoResult, uri: str) -> None:
    import csv

    from mlflow.tracking import MlflowClient

    from directsam.evaluation import report

    # The sweep writes OUTPUT/<sweep id>/results.csv; the demo ran exactly one sweep.
    found = sorted(Path(result.eval_output).glob(f"*/{report.CSV_FILE}"))
    if found:
        result.eval_output = str(found[-1].parent)
        with found[-1].open() as f:
            result.sweep_rows = list(csv.DictReader(f))
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("directsam-eval")
    if exp is not None:
        runs = client.search_runs(
            [exp.experiment_id],
            filter_string=f"tags.`{report.TAG_KIND}` = '{report.KIND_SUMMARY}'",
            order_by=["attributes.start_time DESC"],
        )
        if runs:
            result.mlflow_runs["sweep"] = runs[0].info.run_id


def format_summary(result: DemoResult, wall_s: float) -> str:
    """The closing message: where everything is and how to open MLflow."""
    out = result.output
    db = out / "mlflow.db"
    lines = [
        "",
        f"DirectSAM demo finished in {wall_s / 60:.1f} min ({wall_s:.0f} s).",
        "",
        f"  sample images       {result.sample}",
        f"  stage 1 checkpoint  {result.stage1_checkpoint}",
        f"  stage 2 shards      {result.shards}",
        f"  stage 3 checkpoint  {result.stage3_checkpoint}",
        f"  sweep results       {result.eval_output} (results.csv, recall_vs_tokens.png, panels/)",
        f"  MLflow store        {result.tracking_uri}",
        f"  MLflow artifacts    {out / 'mlartifacts'}",
        "",
        "  stage timings (s)   " + ", ".join(f"{k} {v:.0f}" for k, v in result.timings.items()),
        "  MLflow runs         " + ", ".join(f"{k} {v}" for k, v in result.mlflow_runs.items()),
    ]
    if result.sweep_rows:
        lines += ["", "  threshold  mean_recall  mean_num_tokens"]
        for row in result.sweep_rows:
            lines.append(
                f"  {float(row['threshold']):9.2f}  {float(row['mean_recall']):11.3f}  "
                f"{float(row['mean_num_tokens']):15.1f}"
            )
    lines += [
        "",
        "Open the runs in MLflow (then browse http://127.0.0.1:5000):",
        f"  .venv/bin/mlflow ui --backend-store-uri sqlite:///{db} "
        f"--default-artifact-root {out / 'mlartifacts'} --host 127.0.0.1 --port 5000",
        "Segment your own image with the stage 3 checkpoint:",
        f"  .venv/bin/directsam predict --checkpoint {result.stage3_checkpoint} "
        f"--output {out / 'predict'} IMAGE.jpg",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m directsam.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--output", default="demo_out", help="output folder (default demo_out)")
    parser.add_argument("--num-images", type=int, default=8, help="sample size (default 8)")
    parser.add_argument("--pretrain-steps", type=int, default=8, help="stage 1 steps (default 8)")
    parser.add_argument("--self-train-steps", type=int, default=4, help="stage 3 steps (default 4)")
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    parser.add_argument("--summary-json", default=None, help="also write the summary as JSON here")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        result = run_demo(
            args.output,
            num_images=args.num_images,
            pretrain_steps=args.pretrain_steps,
            self_train_steps=args.self_train_steps,
            num_cpus=args.num_cpus,
        )
    except Exception as err:  # every stage failure ends the demo with a non-zero exit
        print(f"\ndemo failed: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    wall = time.perf_counter() - start
    print(format_summary(result, wall), flush=True)
    if args.summary_json:
        data = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(result).items()}
        Path(args.summary_json).write_text(json.dumps({**data, "wall_s": wall}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
