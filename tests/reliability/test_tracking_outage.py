"""A real ``mlflow server`` killed mid-run: training and labeling finish, exit 0, spool what the
server missed, and a replay brings the server to the same metrics as an uninterrupted run.

One server serves the module (killed with its whole process group, restarted on the same
store), and one local Ray cluster serves the jobs, which run through their command-line mains
in this process. Each test runs the job twice with the same flags, into two output locations:
once with the server up all along (the reference) and once with the server killed after the
first checkpoint / shard is on disk. Wall times of both are printed (docs/RELIABILITY.md).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from directsam.tracking.client import RUN_KEY_TAG
from directsam.tracking.replay import replay
from directsam.tracking.spool import SPOOL_DIR, read_records
from tests.tracking.server import MlflowServer

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = MlflowServer(tmp_path_factory.mktemp("mlflow_server")).start()
    yield srv
    srv.kill()


class KillWhen(threading.Thread):
    """Kills the server's process group as soon as ``ready()`` (polled every 50 ms) is true."""

    def __init__(self, server: MlflowServer, ready: Callable[[], bool]):
        super().__init__(daemon=True)
        self.server, self.ready = server, ready
        self.killed_after_s: float | None = None
        self._halt = threading.Event()
        self._start = time.monotonic()

    def run(self) -> None:
        while not self._halt.is_set():
            if self.ready():
                self.server.kill()
                self.killed_after_s = time.monotonic() - self._start
                return
            time.sleep(0.05)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=60)


def _json_line(out: str, key: str) -> dict:
    """The job's JSON summary among the other stdout lines."""
    (line,) = [ln for ln in out.splitlines() if ln.startswith("{") and f'"{key}"' in ln]
    return json.loads(line)


def _own_lines(err: str) -> str:
    """The job's own stderr: without the lines Ray forwards from its actors (``(Name pid=N)``),
    where Ray Train's internals may log unrelated tracebacks (another cluster on the host)."""
    return "\n".join(ln for ln in err.splitlines() if not re.match(r"^(\x1b\[\d+m)?\(", ln))


def _warnings(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if "tracking records" in ln and "warning:" in ln]


def _metrics(uri: str, run_id: str) -> dict[str, dict[int, float]]:
    """metric name -> {step: value} of a run."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    keys = client.get_run(run_id).data.metrics
    return {k: {m.step: m.value for m in client.get_metric_history(run_id, k)} for k in keys}


def _run_timed(main: Callable[[list[str]], int], argv: list[str]) -> tuple[int, float]:
    start = time.monotonic()
    code = main(argv)
    return code, time.monotonic() - start


def _run_with_outage(
    server: MlflowServer,
    main: Callable[[list[str]], int],
    argv: list[str],
    ready: Callable[[], bool],
    capsys: pytest.CaptureFixture[str],
) -> tuple[str, str, float, float]:
    """Run a job while :class:`KillWhen` kills the server; checks exit 0 and no traceback of the
    job's own; returns (stdout, stderr, wall time, seconds until the kill)."""
    killer = KillWhen(server, ready)
    killer.start()
    try:
        code, wall = _run_timed(main, argv)
    finally:
        killer.stop()
    out, err = capsys.readouterr()
    assert killer.killed_after_s is not None, "the server was never killed"
    assert code == 0, err[-3000:]
    assert "Traceback" not in _own_lines(err)
    return out, err, wall, killer.killed_after_s


def test_training_survives_the_server_loss_and_replays_to_the_uninterrupted_metrics(
    ray_local, sample_root, server, tmp_path, capsys
):
    from mlflow.tracking import MlflowClient

    from directsam.cli.train import pretrain_main

    def argv(storage: Path) -> list[str]:
        return [
            "--config", str(REPO / "configs/smoke/pretrain.yaml"), "--data", str(sample_root),
            "--init", "scratch:tiny", "--storage-path", str(storage), "--max-steps", "16",
            "--tracking-uri", server.uri, "--set", "data.resolution=64",
            "--set", "data.decode_cpus=0.5", "--set", "optim.augment_p=0",
            "--set", "tracking.log_every_steps=1", "--set", "checkpoint.every_steps=4",
            "--set", "validation.every_steps=8",
        ]  # fmt: skip

    # The reference: the server up all along.
    code, wall_ok = _run_timed(pretrain_main, argv(tmp_path / "ok"))
    out, err = capsys.readouterr()
    assert code == 0, err[-3000:]
    ref = _json_line(out, "run_name")
    assert not _warnings(err)

    # The same training elsewhere; the server's process group is killed after step 4's
    # checkpoint, 12 steps before the end.
    storage = tmp_path / "outage"
    ready = lambda: any(storage.glob("*/checkpoint_00000004"))  # noqa: E731
    out, err, wall_outage, killed_after = _run_with_outage(
        server, pretrain_main, argv(storage), ready, capsys
    )
    got = _json_line(out, "run_name")
    run_dir = storage / got["run_name"]
    assert got["run_name"] == ref["run_name"]  # same flags, same name: only the storage differs
    assert got["checkpoint"] == str(run_dir / "checkpoint_00000016")  # the final checkpoint
    assert (run_dir / "checkpoint_00000016" / "model.safetensors").is_file()
    spool = run_dir / SPOOL_DIR
    (warning,) = _warnings(err)  # exactly one warning, naming the spool
    assert f"directsam tracking replay {spool}" in warning

    # Both processes spooled (driver: the end of the run; rank 0: the later steps), each with
    # the bounded MLflow HTTP settings: they reached the Ray worker.
    records = [rec for _, rec, _ in read_records(spool)]
    headers = {rec["role"]: rec for rec in records if rec["op"] == "header"}
    assert set(headers) == {"driver", "rank0"}
    for header in headers.values():
        assert header["mlflow_http_env"]["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"
    spooled_steps = {
        r["step"] for r in records if r["op"] == "log_metrics" and "loss" in r["metrics"]
    }
    assert 16 in spooled_steps and min(spooled_steps) > 4  # mid-run: after the kill
    assert [r["status"] for r in records if r["op"] == "end_run"] == ["FINISHED"]

    server.start()
    report = replay(spool)
    assert not report.failed and report.sent > 0
    client = MlflowClient(server.uri)
    run = client.get_run(got["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["directsam.checkpoint"] == got["checkpoint"]
    assert {"config.json", "model.safetensors", "directsam.json"} <= {
        Path(f.path).name for f in client.list_artifacts(run.info.run_id, "checkpoint")
    }
    ref_metrics = _metrics(server.uri, ref["mlflow_run_id"])
    got_metrics = _metrics(server.uri, got["mlflow_run_id"])
    assert set(got_metrics) == set(ref_metrics)
    for key, series in ref_metrics.items():
        assert sorted(got_metrics[key]) == sorted(series), key  # every step, no gap, no extra
    for key in ("lr", "epoch", "loss", "val_mean_recall", "val_mean_num_tokens"):
        assert got_metrics[key] == pytest.approx(ref_metrics[key], rel=1e-6), key

    again = replay(spool)
    assert again.sent == 0 and not again.failed
    assert _metrics(server.uri, got["mlflow_run_id"]) == got_metrics

    # One MLflow run per training: the other storage path got its own run, and the FINISHED
    # reference run was not reopened or appended to.
    assert got["mlflow_run_id"] != ref["mlflow_run_id"]
    first = client.get_run(ref["mlflow_run_id"])
    assert first.info.status == "FINISHED"
    assert first.data.tags[RUN_KEY_TAG] != run.data.tags[RUN_KEY_TAG]
    assert sorted(ref_metrics["loss"]) == list(range(1, 17))
    print(f"\ntraining wall time: uninterrupted {wall_ok:.1f} s, server killed after "
          f"{killed_after:.1f} s: {wall_outage:.1f} s")  # fmt: skip


def test_labeling_survives_the_server_loss_and_replays_to_the_uninterrupted_metrics(
    ray_local, server, tmp_path, capsys
):
    from mlflow.tracking import MlflowClient

    from directsam.cli.label import main as label_main
    from directsam.data.sample import make_sample

    if not server.healthy():
        server.start()
    sample = make_sample(tmp_path / "sample", num_images=16, seed=3, kind="sa1b",
                         height=48, width=64)  # fmt: skip

    def argv(output: Path) -> list[str]:
        return [
            "--source", "sa1b", "--input", str(sample), "--output", str(output),
            "--checkpoint", "scratch:tiny", "--resolution", "64", "--device", "cpu",
            "--dtype", "fp32", "--rows-per-shard", "2", "--batch-size", "2",
            "--progress-interval", "1000", "--tracking-uri", server.uri,
        ]  # fmt: skip

    code, wall_ok = _run_timed(label_main, argv(tmp_path / "ok"))
    out, err = capsys.readouterr()
    assert code == 0, err[-3000:]
    ref = _json_line(out, "generation")

    output = tmp_path / "outage"
    ready = lambda: any(output.glob("*/gen-*/part-000000.parquet"))  # noqa: E731
    out, err, wall_outage, killed_after = _run_with_outage(
        server, label_main, argv(output), ready, capsys
    )
    got = _json_line(out, "generation")  # the JSON summary is printed
    generation = Path(got["generation"])
    assert got["complete"] and got["num_rows"] == 16 and got["blocks_written"] == 8
    assert len(list(generation.glob("part-*.parquet"))) == 8
    assert (generation / "_SUCCESS.json").is_file()
    spool = output / SPOOL_DIR
    (warning,) = _warnings(err)
    assert f"directsam tracking replay {spool}" in warning

    server.start()
    report = replay(spool)
    assert not report.failed and report.sent > 0
    client = MlflowClient(server.uri)
    (run_id,) = set(report.runs.values())
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["directsam.generation"] == got["generation"]
    ref_metrics = _metrics(server.uri, ref["mlflow_run_id"])
    got_metrics = _metrics(server.uri, run_id)
    assert set(got_metrics) == set(ref_metrics)
    for key in ("num_rows", "num_good", "num_failed", "blocks_written", "blocks_skipped"):
        assert got_metrics[key] == ref_metrics[key], key
    assert replay(spool).sent == 0
    assert _metrics(server.uri, run_id) == got_metrics
    print(f"\nlabeling wall time: uninterrupted {wall_ok:.1f} s, server killed after "
          f"{killed_after:.1f} s: {wall_outage:.1f} s")  # fmt: skip
