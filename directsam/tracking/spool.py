"""The tracking spool: MLflow records that could not be sent, as JSON lines next to a job's outputs.

One file per writing process (``<host>-<pid>-<role>.jsonl``) in a spool folder, so the driver
and a training worker never share a file. The first line of a file is a header (``op:
"header"``: tracking URI, host, pid, role, the ``MLFLOW_HTTP_*`` settings the process ran
with); every other line is one operation on one run::

    {"op": "log_metrics", "t": 1764000000.1, "run": {"experiment": "directsam-pretrain",
     "key": "3f0c...", "run_id": "a1b2..." | null}, "metrics": {"loss": 0.41}, "step": 12,
     "timestamp": 1764000000100}

``run.key`` (the tag ``directsam.run_key``) finds the run again when ``run_id`` was never known
(the server was already gone when the run would have been created). Operations: ``open_run``,
``log_metrics``, ``log_params``, ``set_tags``, ``log_artifact``, ``log_model``, ``end_run``.
:mod:`directsam.tracking.replay` sends a spool later, idempotently.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SPOOL_DIR = "_mlflow_spool"
"""Name of the spool folder a job creates beside its outputs (only when something is spooled)."""
SUFFIX = ".jsonl"
VERSION = 1


def default_spool_dir(name: str) -> Path:
    """A local spool folder for jobs whose outputs are remote (``s3://``): under
    ``$DIRECTSAM_CACHE`` (default ``~/.cache/directsam``)/``mlflow-spool/<name>``."""
    root = Path(os.environ.get("DIRECTSAM_CACHE") or Path.home() / ".cache" / "directsam")
    safe = "".join(c if c.isalnum() or c in "._-" else "-" for c in name).strip("-") or "job"
    return root / "mlflow-spool" / safe


def spool_dir_beside(output: str, name: str) -> Path:
    """``<output>/_mlflow_spool`` for a local output folder, else :func:`default_spool_dir`."""
    if "://" in output and not output.startswith("file://"):
        return default_spool_dir(name)
    return Path(output.removeprefix("file://")).expanduser().resolve() / SPOOL_DIR


class SpoolWriter:
    """Appends records to ``<folder>/<host>-<pid>-<role>.jsonl``; the file appears on first use."""

    def __init__(self, folder: str | os.PathLike[str], uri: str, role: str = "driver"):
        self.folder = Path(folder)
        self.uri = uri
        self.role = role
        host = socket.gethostname().split(".")[0] or "host"
        self.path = self.folder / f"{host}-{os.getpid()}-{role}{SUFFIX}"
        self.count = 0

    def write(self, op: str, run: dict[str, Any] | None, **fields: Any) -> None:
        """Append one record (``run`` is ``{"experiment", "key", "run_id"}``)."""
        lines = []
        if self.count == 0 and not self.path.exists():
            lines.append(self._header())
        lines.append({"v": VERSION, "op": op, "t": time.time(), "run": run, **fields})
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            for record in lines:
                fh.write(json.dumps(record, default=str, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self.count += 1

    def _header(self) -> dict[str, Any]:
        env = {k: v for k, v in sorted(os.environ.items()) if k.startswith("MLFLOW_HTTP_")}
        return {
            "v": VERSION,
            "op": "header",
            "t": time.time(),
            "uri": self.uri,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "role": self.role,
            "mlflow_http_env": env,
        }


def spool_files(path: str | os.PathLike[str]) -> list[Path]:
    """The spool files at ``path``: the file itself, or every ``*.jsonl`` in a spool folder (or
    in its ``_mlflow_spool`` sub-folder), sorted by name."""
    p = Path(path).expanduser()
    if p.is_file():
        return [p]
    if (p / SPOOL_DIR).is_dir():
        p = p / SPOOL_DIR
    return sorted(f for f in p.glob(f"*{SUFFIX}") if f.is_file()) if p.is_dir() else []


def read_records(path: str | os.PathLike[str]) -> Iterator[tuple[Path, dict[str, Any], int]]:
    """(file, record, line number) for every line of every spool file, headers included.

    A line that does not parse (a process killed mid-write) is skipped.
    """
    for file in spool_files(path):
        with open(file, encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(record, dict) and "op" in record:
                    yield file, record, number


def count_records(path: str | os.PathLike[str], since: float | None = None) -> int:
    """Operations (headers excluded) spooled at ``path`` (at or after time ``since``)."""
    return sum(
        1
        for _, record, _ in read_records(path)
        if record["op"] != "header" and (since is None or record.get("t", 0.0) >= since)
    )
