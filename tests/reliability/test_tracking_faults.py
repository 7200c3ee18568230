"""Tracking faults: an unreachable MLflow server stops a job at start, before Ray or any work.

Chosen behaviour: fail fast (not retry). A labeling job logs to MLflow only around its work,
so refusing to start costs nothing, while starting without the run would lose its record.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from directsam.data.sample import make_sample

REPO = Path(__file__).resolve().parents[2]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_label_job_with_unreachable_tracking_server_fails_fast(tmp_path):
    sample = make_sample(tmp_path / "in", num_images=2, seed=0, kind="sa1b", height=24, width=32)
    uri = f"http://127.0.0.1:{_closed_port()}"
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "ray_jobs/pseudo_label.py",
        "--source",
        "sa1b",
        "--input",
        str(sample),
        "--output",
        str(out),
        "--checkpoint",
        "scratch:tiny",
        "--resolution",
        "64",
        "--device",
        "cpu",
        "--tracking-uri",
        uri,
    ]
    env = {**os.environ, "RAY_ADDRESS": "", "RAY_AUTH_MODE": "disabled"}
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - start
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"--tracking-uri {uri}: MLflow tracking server unreachable" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "Started a local Ray instance" not in proc.stderr + proc.stdout  # before Ray starts
    assert not out.exists()  # before any work
    assert elapsed < 60, elapsed  # interpreter start + imports; the check itself is one connect
