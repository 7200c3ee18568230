"""A real ``mlflow server`` on 127.0.0.1 for tests: start, kill (whole process group), restart.

The server is a process tree (the CLI, uvicorn and its workers), and its workers outlive a
killed parent, so it runs in its own session and is killed with ``killpg``. A restart keeps the
port and the sqlite backend, as a restarted production server would.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    """``mlflow server --workers 1`` with a sqlite backend and a local artifact root in ``root``."""

    def __init__(self, root: Path, port: int | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.backend = f"sqlite:///{self.root / 'server.db'}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 180.0) -> MlflowServer:
        mlflow = Path(sys.executable).parent / "mlflow"
        cmd = [
            str(mlflow), "server", "--host", "127.0.0.1", "--port", str(self.port),
            "--workers", "1", "--backend-store-uri", self.backend,
            "--artifacts-destination", str(self.root / "artifacts"),
        ]  # fmt: skip
        # The server's background job runner (four huey consumers) is not needed for tracking.
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        log = open(self.root / "server.log", "ab")  # noqa: SIM115 - lives as long as the server
        self.proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {self.log_tail()}")
            if self.healthy():
                return self
            time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"mlflow server not up after {timeout_s} s: {self.log_tail()}")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.uri + "/health", timeout=1) as resp:
                return resp.status == 200
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL the whole process group and wait until the port is closed."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        self.proc = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.healthy():
            time.sleep(0.1)

    def restart(self) -> MlflowServer:
        self.kill()
        return self.start()

    def log_tail(self, n: int = 2000) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace")[-n:] if path.exists() else ""
