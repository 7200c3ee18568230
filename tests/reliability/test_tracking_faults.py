"""Tracking faults at start: every command that tracks or reads MLflow stops before Ray starts
when ``--tracking-uri`` is unusable: exit 2, one line naming the flag and what is wrong.

Each command runs as its own process (the console entry point and the ``ray_jobs/`` scripts),
with ``RAY_TMPDIR`` pointing into the test's folder: a Ray start would create it. The losses
*during* a run are in ``test_tracking_outage.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.tracking.server import free_port

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # 22 short-lived processes


def _commands(sample: Path, out: Path) -> dict[str, list[str]]:
    smoke = str(REPO / "configs/smoke/pretrain.yaml")
    train = ["--data", str(sample), "--init", "scratch:tiny", "--storage-path", str(out)]
    label = ["--source", "sa1b", "--input", str(sample), "--output", str(out),
             "--checkpoint", "scratch:tiny", "--resolution", "64", "--device", "cpu"]  # fmt: skip
    evaluate = ["--checkpoint", "scratch:tiny", "--source", "sa1b", "--input", str(sample),
                "--output", str(out), "--cache-dir", str(out / "cache")]  # fmt: skip
    cli = [sys.executable, "-m", "directsam.cli"]
    return {
        "directsam pretrain": [*cli, "pretrain", "--config", smoke, *train],
        "directsam self-train": [*cli, "self-train", *train],
        "directsam label": [*cli, "label", *label],
        "directsam evaluate": [*cli, "evaluate", *evaluate],
        "directsam sweep": [*cli, "sweep", *evaluate],
        "directsam compare": [*cli, "compare", "--output", str(out / "plot.png")],
        "ray_jobs/pretrain.py": [
            sys.executable,
            f"{REPO}/ray_jobs/pretrain.py",
            "--config",
            smoke,
            *train,
        ],
        "ray_jobs/self_train.py": [sys.executable, f"{REPO}/ray_jobs/self_train.py", *train],
        "ray_jobs/pseudo_label.py": [sys.executable, f"{REPO}/ray_jobs/pseudo_label.py", *label],
        "ray_jobs/evaluate.py": [sys.executable, f"{REPO}/ray_jobs/evaluate.py", *evaluate],
        "ray_jobs/sweep.py": [sys.executable, f"{REPO}/ray_jobs/sweep.py", *evaluate],
    }


BAD_URIS = {
    "unreachable": ("http://127.0.0.1:{port}", "MLflow tracking server unreachable"),
    "no scheme": ("127.0.0.1:{port}", "missing http://"),
}


@pytest.mark.parametrize("problem", sorted(BAD_URIS))
def test_every_tracking_command_fails_fast_on_a_bad_tracking_uri(problem, sample_root, tmp_path):
    template, words = BAD_URIS[problem]
    uri = template.format(port=free_port())
    env = {**os.environ, "RAY_ADDRESS": "", "RAY_AUTH_MODE": "disabled",
           "RAY_TMPDIR": str(tmp_path / "raytmp")}  # fmt: skip
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    times = {}
    for name, cmd in _commands(sample_root, tmp_path / "out").items():
        start = time.monotonic()
        proc = subprocess.run([*cmd, "--tracking-uri", uri], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        times[name] = time.monotonic() - start
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2, (name, proc.stderr[-2000:])
        assert len(lines) == 1, (name, proc.stderr)
        assert f"error: --tracking-uri {uri}: {words}" in lines[0], (name, lines[0])
        assert "Started a local Ray instance" not in proc.stderr + proc.stdout, name
    assert not (tmp_path / "raytmp").exists()  # no Ray session anywhere
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no output, no mlflow.db
    print(f"\n{problem}: " + ", ".join(f"{k} {v:.2f} s" for k, v in times.items()))
