"""Connecting to Ray and checks that depend on the cluster's shape (storage, progress lines).

The library never calls ``ray.init`` on import; jobs call :func:`init_ray` once at start.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from directsam.config import ConfigError

# Object-store settings the driver's environment passes on to every worker of the job.
STORE_ENV = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION")


def _job_env_keys() -> set[str]:
    """Env var names the submitted job's runtime env already sets (Ray refuses a second one)."""
    import json

    raw = os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR")
    if not raw:
        return set()
    try:
        env = (json.loads(raw).get("runtime_env") or {}).get("env_vars") or {}
    except (ValueError, AttributeError):
        return set()
    return set(env)


def worker_env_vars(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Env vars for the job's runtime env: the driver's S3 endpoint/region (``STORE_ENV``) plus
    ``extra``, minus those the submitted job's runtime env sets itself."""
    env = {k: os.environ[k] for k in STORE_ENV if os.environ.get(k)}
    env.update(extra or {})
    skip = _job_env_keys()
    return {k: v for k, v in env.items() if k not in skip}


def init_ray(
    address: str | None = None,
    num_cpus: int | None = None,
    env_vars: dict[str, str] | None = None,
    **kwargs: Any,
) -> None:
    """Connect to ``address`` (or ``RAY_ADDRESS``), or start a new local Ray.

    A new local cluster never joins another cluster found on the host. Note that Ray 2.60's
    local processes listen on all interfaces even with ``_node_ip_address="127.0.0.1"``
    (checked with the open sockets; see docs/RELIABILITY.md): rely on token auth and the
    host firewall, not on the bind address.

    Already-initialised Ray is reused, so tests and notebooks can share one local cluster.
    A local cluster is started without the dashboard unless ``include_dashboard=True``.

    The driver's S3 endpoint and region (``AWS_ENDPOINT_URL``, ``AWS_REGION``, ... and
    ``env_vars``) go into the job's runtime env, so Ray workers on other hosts reach the same
    object store (:func:`worker_env_vars`).
    """
    import ray

    if ray.is_initialized():
        return
    env = worker_env_vars(env_vars)
    if env:
        runtime_env = dict(kwargs.pop("runtime_env", None) or {})
        runtime_env["env_vars"] = {**env, **(runtime_env.get("env_vars") or {})}
        kwargs["runtime_env"] = runtime_env
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address in (None, "local"):
        kwargs.setdefault("include_dashboard", False)
        # address="local": ray.init(address=None) would join any cluster found via
        # /tmp/ray/ray_current_cluster (e.g. another user's `ray start`) instead.
        ray.init(address="local", num_cpus=num_cpus, **kwargs)
    else:
        ray.init(address=address, **kwargs)


def is_remote_uri(path: str) -> bool:
    """True for ``s3://``, ``gs://``, ... (anything with a scheme other than ``file``)."""
    return "://" in path and not path.startswith("file://")


def cluster_hosts() -> set[str]:
    """Distinct host addresses of the alive nodes of the connected cluster."""
    import ray

    return {n["NodeManagerAddress"] for n in ray.nodes() if n.get("Alive")}


def check_storage_path(path: str, shared_storage: bool, flag: str = "--storage-path") -> None:
    """Refuse a local storage path on a multi-host cluster unless declared shared.

    Checkpoints written by a worker on another host would land on that host's disk, where the
    driver (and a restarted worker) cannot find them.
    """
    if is_remote_uri(path) or shared_storage:
        return
    hosts = cluster_hosts()
    if len(hosts) > 1:
        raise ConfigError(
            f"{flag} {path!r} is a local path but the cluster spans {len(hosts)} hosts "
            f"({', '.join(sorted(hosts))}); use s3://... / gs://... or an NFS mount and pass "
            "--shared-storage if the path is shared by every node"
        )


class ProgressLogger:
    """Prints ``"N/M images, X img/s"`` at most every ``interval_s`` seconds (job logs).

    Ray Data's bars are for terminals; ``ray job logs`` and CI want plain periodic lines.
    """

    def __init__(self, total: int | None, interval_s: float = 30.0, label: str = "images"):
        self.total = total
        self.interval_s = interval_s
        self.label = label
        self.count = 0
        self.start = time.perf_counter()
        self._last = self.start

    def update(self, n: int) -> None:
        self.count += n
        now = time.perf_counter()
        if now - self._last >= self.interval_s:
            self._last = now
            self.emit()

    def rate(self) -> float:
        elapsed = time.perf_counter() - self.start
        return self.count / elapsed if elapsed > 0 else 0.0

    def emit(self) -> None:
        total = f"/{self.total}" if self.total is not None else ""
        print(
            f"{self.count}{total} {self.label}, {self.rate():.2f} img/s",
            file=sys.stderr,
            flush=True,
        )
