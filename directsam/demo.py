"""The end-to-end demo: sample -> stage 1 -> stage 2 -> stage 3 -> evaluation -> compare -> photo.

``bash scripts/demo.sh`` installs the project and runs ``python -m directsam.demo``. Every stage
is the real job, called through the same flags as its CLI (``directsam pretrain | label |
self-train | sweep | compare | predict``) inside one local Ray cluster started in this process,
and every stage logs to one sqlite MLflow store::

    OUT/sample/train/      SA-1B-format scenes stage 1 trains on (directsam make-sample)
    OUT/sample/unlabeled/  scenes stage 2 labels with the stage 1 model; stage 3 trains on them
    OUT/sample/val/        held-out scenes: only the final evaluation reads them
    OUT/runs/              stage 1 and stage 3 Ray Train runs and their checkpoints
    OUT/labels/            stage 2 Parquet shards (OUT/labels/<dataset>/gen-<sha>/part-*.parquet)
    OUT/eval/              one threshold sweep per checkpoint (results.csv, plot, panels)
    OUT/compare/           the closing table and recall-vs-tokens plot (directsam compare)
    OUT/photo/, predict/   a real photograph (scikit-image's astronaut) and its segmentation
    OUT/mlflow.db          MLflow runs of every stage; artifacts under OUT/mlartifacts/

Random-init SegFormer-B0 at 128 px really learns here: stage 1 trains long enough to find the
boundaries of held-out scenes, and the closing table puts the random init, stage 1 and stage 3
side by side on the same held-out images. The step budgets were chosen by measurement
(README, "The demo").
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

from directsam.cli.smoke import smoke_preset, smoke_tracking_uri

#: Side of the square model input in every stage (a multiple of 32; small so CPUs cope).
RESOLUTION = 128
#: Dataset name prefix of the generated sample (shard folders, MLflow tags).
DATASET = "demo"
#: The sample's three parts: (folder and dataset suffix, generator seed).
PARTS = (("train", 0), ("unlabeled", 1), ("val", 2))
#: The experiment the three evaluations and the comparison run go to.
EVAL_EXPERIMENT = "directsam-eval"
#: Boundary thresholds of the evaluation sweep (the seed's protocol).
THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5)
#: Threshold stored in the checkpoints (validation, stage 2 labels, ``directsam predict``):
#: a short CPU run is less confident than a converged model, so 0.5 would keep almost nothing.
THRESHOLD = 0.2


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
    val_ids: list[str] = field(default_factory=list)
    """Image ids of the held-out images every checkpoint is scored on."""
    checkpoints: dict[str, str] = field(default_factory=dict)
    """Column name in the closing table -> checkpoint spec."""
    compare_table: str = ""
    compare_plot: str = ""
    photo_overlay: str = ""
    mlflow_runs: dict[str, str] = field(default_factory=dict)
    """Stage -> MLflow run id."""
    timings: dict[str, float] = field(default_factory=dict)
    dashboard: str = ""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _at_end(steps: int) -> list[str]:
    """Overrides: validate and checkpoint once, after the last step (each pass costs seconds)."""
    return ["--set", f"validation.every_steps={steps}", "--set", f"checkpoint.every_steps={steps}"]


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
    from directsam.cli import train as cli

    parser = argparse.ArgumentParser(prog=stage)
    cli.add_train_args(parser, stage)
    cmd = "pretrain" if stage == "pretrain" else "self-train"
    log("equivalent: directsam " + cmd + " " + shlex.join(argv))
    cfg = cli.build_config(parser.parse_args(argv), stage)
    cli.preflight(cfg)  # the checks the command runs before Ray work
    return cli.run_job(cfg)


def _label(argv: list[str], log: Callable[[str], None]) -> dict[str, Any]:
    from directsam.cli import label as cli

    parser = argparse.ArgumentParser(prog="label")
    cli.add_label_args(parser)
    log("equivalent: directsam label " + shlex.join(argv))
    cfg = cli.build_config(parser.parse_args(argv))
    cli.preflight(cfg)
    return cli.run_job(cfg, log=log)


def _command(
    name: str, main: Callable[[list[str]], int], argv: list[str], log: Callable[[str], None]
) -> None:
    log(f"equivalent: directsam {name} " + shlex.join(argv))
    code = main(argv)
    if code != 0:
        raise RuntimeError(f"directsam {name} failed (exit {code})")


def _sample_ids(root: Path, dataset: str) -> list[str]:
    from directsam.data.sources import SourceSpec, list_source

    spec = SourceSpec("sa1b", str(root), dataset=dataset)
    return [item.image_id for item in list_source(spec)]


def make_demo_sample(
    root: Path, sizes: dict[str, int], log: Callable[[str], None] = print
) -> dict[str, list[str]]:
    """Write the three SA-1B-format parts under ``root`` with disjoint ids; returns their ids.

    Each part has its own generator seed (so no scene repeats) and its own id range
    (``sa_1..`` for train, then unlabeled, then val), read back through the real ``sa1b``
    listing. Raises when two parts share an id.
    """
    from directsam.data.sample import make_sample

    ids: dict[str, list[str]] = {}
    first = 1
    for part, seed in PARTS:
        make_sample(root / part, num_images=sizes[part], seed=seed, kind="sa1b", first_number=first)
        first += sizes[part]
        ids[part] = _sample_ids(root / part, f"{DATASET}-{part}")
        log(f"{sizes[part]} SA-1B-format images in {root / part} ({_id_range(ids[part])})")
    seen: set[str] = set()
    for part, _ in PARTS:
        if seen & set(ids[part]):
            raise RuntimeError(f"sample part {part} shares ids with another part")
        seen |= set(ids[part])
    return ids


def _id_range(ids: Sequence[str]) -> str:
    """``sa_193..sa_208`` for consecutive SA-1B ids (the sample's), else the ids joined."""
    nums = sorted(int(i.split("_", 1)[1]) for i in ids)
    if nums == list(range(nums[0], nums[0] + len(nums))):
        return f"sa_{nums[0]}..sa_{nums[-1]}"
    return ", ".join(sorted(ids))


def run_demo(
    output: str | Path = "demo_out",
    *,
    train_images: int = 128,
    unlabeled_images: int = 64,
    val_images: int = 16,
    pretrain_steps: int = 150,
    self_train_steps: int = 50,
    batch_size: int = 8,
    num_workers: int = 0,
    thresholds: Sequence[float] = THRESHOLDS,
    num_cpus: int = 2,
    photo: bool = True,
    log: Callable[[str], None] = print,
) -> DemoResult:
    """Run every stage into ``output``; raises on the first stage that fails.

    Starts a local Ray cluster (``num_cpus`` CPUs) unless Ray is already initialised, and
    shuts it down at the end only if it started it. ``num_workers=0`` runs both training
    stages in Ray Train's local mode: the same loop and Ray Data input, in this process, where
    torch uses every core, whereas a Ray Train worker that reserves one CPU gets one torch
    thread (Ray sets ``OMP_NUM_THREADS=1``) and waits for its worker group to start.
    """
    import ray

    out = Path(output).resolve()
    out.mkdir(parents=True, exist_ok=True)
    uri = smoke_tracking_uri(out)
    result = DemoResult(output=out, tracking_uri=uri, sample=out / "sample")
    common = ["--tracking-uri", uri]
    train_part, unlabeled_part, val_part = (result.sample / p for p, _ in PARTS)
    batch = ["--set", f"optim.batch_size={batch_size}", "--set", "optim.grad_accum=1"]
    train_common = [
        "--storage-path", str(out / "runs"), "--num-workers", str(num_workers),
        "--set", f"data.resolution={RESOLUTION}", "--set", "data.thickness=2",
        "--set", f"validation.threshold={THRESHOLD}", "--set", "tracking.log_every_steps=10",
        *batch, *common,
    ]  # fmt: skip

    with _timed(result, "sample", log):
        sizes = {"train": train_images, "unlabeled": unlabeled_images, "val": val_images}
        ids = make_demo_sample(result.sample, sizes, log)
        result.val_ids = ids["val"]

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
                "--config", smoke_preset("pretrain"), "--data", str(train_part),
                "--dataset", f"{DATASET}-train", "--init", "scratch:b0",
                "--max-steps", str(pretrain_steps), *_at_end(pretrain_steps), *train_common,
            ], log)  # fmt: skip
            result.stage1_checkpoint = str(s1["checkpoint"])
            result.mlflow_runs["pretrain"] = str(s1["mlflow_run_id"])

        with _timed(result, "stage 2: pseudo-label", log):
            s2 = _label([
                "--config", smoke_preset("pseudo_label"), "--source", "sa1b",
                "--input", str(unlabeled_part), "--dataset", f"{DATASET}-unlabeled",
                "--output", str(out / "labels"), "--checkpoint", result.stage1_checkpoint,
                "--resolution", str(RESOLUTION), "--threshold", str(THRESHOLD),
                "--thickness", "2", "--set", "tracking.enabled=true", *common,
            ], log)  # fmt: skip
            if not s2.get("complete") or not s2.get("num_good"):
                raise RuntimeError(f"pseudo-labeling wrote no complete generation: {s2}")
            result.shards = str(s2["generation"])
            if s2.get("mlflow_run_id"):
                result.mlflow_runs["label"] = str(s2["mlflow_run_id"])

        with _timed(result, "stage 3: self-train", log):
            s3 = _train("self_train", [
                "--config", smoke_preset("self_train"), "--data", str(out / "labels"),
                "--init", result.stage1_checkpoint, "--max-steps", str(self_train_steps),
                *_at_end(self_train_steps), *train_common,
            ], log)  # fmt: skip
            result.stage3_checkpoint = str(s3["checkpoint"])
            result.mlflow_runs["self_train"] = str(s3["mlflow_run_id"])

        result.checkpoints = {
            "random init": "scratch:b0",
            "stage 1": result.stage1_checkpoint,
            "stage 3": result.stage3_checkpoint,
        }
        _evaluate(result, val_part, val_images, thresholds, log)
        _compare(result, log)
    finally:
        if started:
            ray.shutdown()
    if photo:
        with _timed(result, "photo", log):
            result.photo_overlay = str(segment_photo(result.stage3_checkpoint, out, log))
    return result


def _evaluate(
    result: DemoResult,
    val_part: Path,
    num_images: int,
    thresholds: Sequence[float],
    log: Callable[[str], None],
) -> None:
    """One threshold sweep per checkpoint, all on the same held-out images."""
    from directsam.cli.evaluate import sweep_main

    out = result.output
    result.eval_output = str(out / "eval")
    log(f"\nheld-out images (never read by stages 1-3): {_id_range(result.val_ids)} in {val_part}")
    for name, checkpoint in result.checkpoints.items():
        with _timed(result, f"evaluate {name}", log):
            _command("sweep", sweep_main, [
                "--config", smoke_preset("sweep"), "--checkpoint", checkpoint,
                "--source", "sa1b", "--input", str(val_part), "--dataset", f"{DATASET}-val",
                "--split", "all", "--num-samples", str(num_images),
                "--resolution", str(RESOLUTION), "--thickness", "2", "--tolerance", "5",
                "--thresholds", ",".join(f"{t:g}" for t in thresholds),
                "--cache-dir", str(out / "eval_cache"), "--output", result.eval_output,
                "--experiment", EVAL_EXPERIMENT, "--tracking-uri", result.tracking_uri,
            ], log)  # fmt: skip


def _compare(result: DemoResult, log: Callable[[str], None]) -> None:
    """``directsam compare --wide --log-run`` over the three checkpoints: the closing table."""
    from directsam.cli.compare import compare_main
    from directsam.evaluation.compare import TABLE_FILE

    plot = result.output / "compare" / "recall_vs_tokens.png"
    argv = ["--experiment", EVAL_EXPERIMENT, "--tracking-uri", result.tracking_uri,
            "--dataset", f"{DATASET}-val", "--output", str(plot), "--wide", "--log-run"]  # fmt: skip
    for name, checkpoint in result.checkpoints.items():
        argv += ["--checkpoint", checkpoint, "--label", f"{checkpoint}={name}"]
    with _timed(result, "compare", log):
        _command("compare", compare_main, argv, log)
    result.compare_plot = str(plot)
    result.compare_table = (plot.parent / TABLE_FILE).read_text().rstrip()
    _record_latest_run(result, result.tracking_uri, "compare", EVAL_EXPERIMENT, "comparison")


def segment_photo(checkpoint: str, out: Path, log: Callable[[str], None] = print) -> Path:
    """``directsam predict`` on scikit-image's astronaut photograph; returns the overlay PNG.

    The photo ships with scikit-image (no download). Resolution and threshold come from the
    checkpoint's ``directsam.json``, as for any user's image.
    """
    from PIL import Image
    from skimage import data

    from directsam.cli import main as cli_main

    photo = out / "photo" / "astronaut.png"
    photo.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(data.astronaut()).save(photo)
    _command("predict", lambda argv: cli_main(["predict", *argv]), ["--checkpoint", checkpoint,
             "--output", str(out / "predict"), str(photo)], log)  # fmt: skip
    overlay = out / "predict" / "astronaut_overlay.png"
    log(f"overlay of the photo's tokens: {overlay}")
    return overlay


def _record_latest_run(
    result: DemoResult, uri: str, stage: str, experiment: str, kind: str | None = None
) -> None:
    from mlflow.tracking import MlflowClient

    from directsam.evaluation import report

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return
    flt = f"tags.`{report.TAG_KIND}` = '{kind}'" if kind else ""
    runs = client.search_runs(
        [exp.experiment_id], filter_string=flt, order_by=["attributes.start_time DESC"]
    )
    if runs:
        result.mlflow_runs[stage] = runs[0].info.run_id


def format_summary(result: DemoResult, wall_s: float) -> str:
    """The closing message: the comparison table, where everything is, how to open MLflow."""
    out = result.output
    lines = [
        "",
        f"DirectSAM demo finished in {wall_s / 60:.1f} min ({wall_s:.0f} s).",
        "",
        f"  sample              {result.sample} (train/, unlabeled/, val/)",
        f"  stage 1 checkpoint  {result.stage1_checkpoint}",
        f"  stage 2 shards      {result.shards}",
        f"  stage 3 checkpoint  {result.stage3_checkpoint}",
        f"  evaluations         {result.eval_output} (one sweep per checkpoint)",
        f"  comparison          {result.compare_plot} (+ comparison.txt, comparison.csv)",
        f"  photo overlay       {result.photo_overlay or '-'}",
        f"  MLflow store        {result.tracking_uri}",
        f"  MLflow artifacts    {out / 'mlartifacts'}",
        "",
        "  stage timings (s)   " + ", ".join(f"{k} {v:.0f}" for k, v in result.timings.items()),
        "  MLflow runs         " + ", ".join(f"{k} {v}" for k, v in result.mlflow_runs.items()),
    ]
    if result.compare_table:
        lines += [
            "",
            f"Held-out images scored (never read by stages 1-3): {_id_range(result.val_ids)}",
            "",
            result.compare_table,
        ]
    lines += [
        "",
        "Open the runs in MLflow (then browse http://127.0.0.1:5000):",
        f"  .venv/bin/mlflow ui --backend-store-uri {result.tracking_uri} "
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
    parser.add_argument(
        "--train-images", type=int, default=128, help="stage 1 scenes (default 128)"
    )
    parser.add_argument(
        "--unlabeled-images", type=int, default=64, help="stage 2/3 scenes (default 64)"
    )
    parser.add_argument("--val-images", type=int, default=16, help="held-out scenes (default 16)")
    parser.add_argument(
        "--pretrain-steps", type=int, default=150, help="stage 1 steps (default 150)"
    )
    parser.add_argument(
        "--self-train-steps", type=int, default=50, help="stage 3 steps (default 50)"
    )
    parser.add_argument("--batch-size", type=int, default=8, help="images per step (default 8)")
    parser.add_argument(
        "--num-workers",
        type=int,
        default=0,
        help="Ray Train workers; 0 (default) = Train local mode: the same loop in this process, "
        "with both cores (a worker reserving 1 CPU trains on 1 torch thread)",
    )
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    parser.add_argument("--no-photo", action="store_true", help="skip segmenting the photo")
    parser.add_argument("--summary-json", default=None, help="also write the summary as JSON here")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        result = run_demo(
            args.output,
            train_images=args.train_images,
            unlabeled_images=args.unlabeled_images,
            val_images=args.val_images,
            pretrain_steps=args.pretrain_steps,
            self_train_steps=args.self_train_steps,
            batch_size=args.batch_size,
            num_workers=args.num_workers,
            num_cpus=args.num_cpus,
            photo=not args.no_photo,
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
