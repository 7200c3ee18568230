"""``ray job submit`` round trip: a real head node on 127.0.0.1, the stage 1 smoke job submitted
with the documented runtime env and a config-derived submission id, its checkpoint and MLflow
run found afterwards.

The cluster is started with ``ray start --head --block`` in its own process group and torn down
by signalling that group only: ``ray stop`` would also stop every other Ray on this machine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CONFIG = "configs/smoke/pretrain.yaml"

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cluster_env() -> dict[str, str]:
    """Env of the head and of the CLI: this venv's python first on PATH (the job driver runs
    ``python``), no token auth on this throwaway 127.0.0.1 cluster."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        RAY_AUTH_MODE="disabled",
        RAY_USAGE_STATS_ENABLED="0",
        HF_HUB_OFFLINE="1",
    )
    return env


@pytest.fixture(scope="module")
def head_node():
    """``(dashboard URL, env)`` of a 2-CPU head node started for this module."""
    from ray.job_submission import JobSubmissionClient

    # A short private temp dir: Ray's unix socket paths must stay under ~107 characters, and
    # a private dir keeps this cluster out of other local clusters' address files.
    temp_dir = tempfile.mkdtemp(prefix="rjs", dir="/tmp")
    dash = free_port()
    env = cluster_env()
    cmd = [
        str(BIN / "ray"), "start", "--head", "--block",
        "--node-ip-address", "127.0.0.1", "--port", str(free_port()),
        "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash),
        "--ray-client-server-port", str(free_port()),
        "--dashboard-agent-listen-port", str(free_port()),
        "--num-cpus", "2", "--num-gpus", "0", "--temp-dir", temp_dir,
        "--object-store-memory", str(300 * 1024 * 1024),
    ]  # fmt: skip
    log = open(Path(temp_dir) / "ray_start.log", "w")  # noqa: SIM115 - closed in teardown
    proc = subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{dash}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"ray start exited {proc.returncode}: {_tail(log.name)}")
            try:
                JobSubmissionClient(url).list_jobs()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"job server {url} did not come up: {_tail(log.name)}"
                    ) from None
                time.sleep(2)
        yield url, env
    finally:
        _stop_group(proc)
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _tail(path: str, n: int = 3000) -> str:
    return Path(path).read_text(errors="replace")[-n:]


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM ``ray start --block`` (it stops the processes it started), then SIGKILL what is
    left of its process group. A throwaway cluster: 10 s of grace is plenty (its graceful stop
    can take over 30 s on 2 busy cores, all of it waiting)."""
    pgid = os.getpgid(proc.pid)
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def test_submit_pretrain_smoke_job(head_node, sample_root, tmp_path):
    from mlflow.tracking import MlflowClient
    from ray.job_submission import JobStatus, JobSubmissionClient

    from directsam.cli.submit import build_submit_command, effective_config_hash, submission_id
    from directsam.tracking.mlflow import RUN_NAME_TAG

    url, env = head_node
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    overrides = ["data.resolution=64", "checkpoint.every_steps=2", "validation.every_steps=0"]
    job_args = [
        "--data", str(sample_root), "--max-steps", "2", "--run-name", "submit-smoke",
        "--storage-path", str(tmp_path / "runs"), "--tracking-uri", uri,
    ]  # fmt: skip
    digest = effective_config_hash(REPO / CONFIG, overrides, job_args)
    sub_id = submission_id("pretrain", digest)
    cmd = build_submit_command(
        "pretrain", CONFIG, overrides, url, "cluster/runtime_env.yaml",
        sub_id=sub_id, metadata={"directsam.config_hash": digest}, no_wait=True,
        job_args=job_args,
    )  # fmt: skip
    assert cmd[:3] == ["ray", "job", "submit"]
    cmd[0] = str(BIN / "ray")
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr

    client = JobSubmissionClient(url)
    deadline = time.monotonic() + 420
    while not (status := client.get_job_status(sub_id)).is_terminal():
        assert time.monotonic() < deadline, client.get_job_logs(sub_id)[-3000:]
        time.sleep(3)
    logs = client.get_job_logs(sub_id)
    assert status == JobStatus.SUCCEEDED, logs[-4000:]

    # The id and metadata trace the submission back to its config.
    info = client.get_job_info(sub_id)
    assert info.submission_id.startswith(f"pretrain-{digest}-")
    assert info.metadata["directsam.config_hash"] == digest
    assert info.runtime_env["working_dir"].startswith("gcs://")

    # The job's summary line names the checkpoint, which holds weights and metadata.
    summary = json.loads(next(ln for ln in logs.splitlines() if ln.startswith('{"run_name"')))
    assert summary["run_name"] == "submit-smoke"
    ckpt = Path(summary["checkpoint"])
    assert ckpt.parent == tmp_path / "runs" / "submit-smoke"
    assert (ckpt / "model.safetensors").is_file() and (ckpt / "config.json").is_file()
    meta = json.loads((ckpt / "directsam.json").read_text())
    assert meta["resolution"] == 64

    # ... and the MLflow run, found by its run-name tag, has the config and the losses.
    mlflow = MlflowClient(tracking_uri=uri)
    exp = mlflow.get_experiment_by_name("directsam-pretrain")
    runs = mlflow.search_runs([exp.experiment_id], f"tags.`{RUN_NAME_TAG}` = 'submit-smoke'")
    assert [r.info.run_id for r in runs] == [summary["mlflow_run_id"]]
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["data.resolution"] == "64"
    assert [m.step for m in mlflow.get_metric_history(run.info.run_id, "loss")][-1] == 2
