"""``directsam submit``: a config + overrides -> the ``ray job submit`` command for a remote cluster.

The command is the one documented in ``cluster/README.md``::

    ray job submit --address http://127.0.0.1:8265 --working-dir . \\
        --runtime-env cluster/runtime_env.yaml --submission-id pretrain-<hash>-<utc time> \\
        --metadata-json '{...}' -- python ray_jobs/pretrain.py --config configs/pretrain.yaml

The submission id carries a hash of the effective config (the YAML file plus ``--set``
overrides), so ``ray job list`` shows which resubmissions ran the same settings; the UTC time
suffix keeps ids unique (Ray refuses a reused id). The job driver runs on the head node: no
``--entrypoint-num-cpus`` by default, because the cluster heads advertise 0 CPUs, and a CPU
reservation would move the driver onto a spot worker that can be reclaimed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from directsam.config import ConfigError, config_hash

#: The dashboard forwarded by ``ray dashboard cluster/<cloud>-gpu.yaml`` or
#: ``kubectl port-forward svc/directsam-head-svc 8265:8265``.
DEFAULT_ADDRESS = "http://127.0.0.1:8265"
#: Runtime env of every job: upload excludes and job env vars (see the file's comments).
DEFAULT_RUNTIME_ENV = "cluster/runtime_env.yaml"
#: Where ``ray get-auth-token --generate`` writes the token (Ray's default token path).
DEFAULT_TOKEN_FILE = Path("~/.ray/auth_token")

_JOB_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# PyYAML follows YAML 1.1, where "5e-5" (no dot) is a string; the jobs' typed configs turn it
# into a float. The hash must see the same number whichever way it was written.
_EXP_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def job_script(job: str) -> str:
    """``"pseudo-label"`` or ``"pseudo_label"`` -> ``"ray_jobs/pseudo_label.py"``.

    Raises:
        ConfigError: the name is not a plain identifier (it becomes a path and part of the id).
    """
    name = job.replace("-", "_")
    if not _JOB_NAME.match(name):
        raise ConfigError(
            f"JOB {job!r}: expected a job name such as pretrain, pseudo_label, self_train, "
            "evaluate or sweep (the script ray_jobs/<JOB>.py)"
        )
    return f"ray_jobs/{name}.py"


def submission_id(job: str, config_hash: str, now: datetime | None = None) -> str:
    """``"<job>-<config_hash>-<YYYYmmdd-HHMMSS>"`` with the time in UTC, e.g.
    ``"pretrain-3f2a9c01be-20261125-101500"``. ``now`` defaults to the current time."""
    moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return f"{job.replace('-', '_')}-{config_hash}-{moment:%Y%m%d-%H%M%S}"


def load_raw_config(config_path: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The YAML mapping of ``config_path`` with dotted ``key=value`` overrides applied.

    Values are parsed as YAML, as the jobs themselves do, and ``5e-5``-style numbers (strings to
    PyYAML) are read as floats, as the jobs' typed configs do.
    The job's own dataclass is not built here: ``submit`` knows no job's schema, and the job
    validates its config on the cluster.

    Raises:
        ConfigError: missing or invalid file, or an override without ``=``.
    """
    import yaml

    path = Path(config_path)
    if not path.is_file():
        raise ConfigError(f"--config: file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"--config: {path} is not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"--config: {path} must hold a mapping at the top level")
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set train.lr=1e-4")
        key, text = item.split("=", 1)
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        node = raw
        parts = key.strip().split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
    return _exp_floats(raw)


def _exp_floats(tree: Any) -> Any:
    """Strings such as ``"5e-5"`` -> floats, recursively (YAML 1.2 reading of numbers)."""
    if isinstance(tree, dict):
        return {k: _exp_floats(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_exp_floats(v) for v in tree]
    if isinstance(tree, str) and _EXP_FLOAT.match(tree):
        return float(tree)
    return tree


def effective_config_hash(
    config_path: str | Path, overrides: Sequence[str] = (), job_args: Sequence[str] = ()
) -> str:
    """10-hex-digit hash of the config file plus overrides (and extra job flags, if any).

    ``directsam.config.config_hash`` of the loaded mapping: key order and formatting of the
    YAML do not change it. Extra flags (``--output``, ``--gpu-actors`` ...) are hashed in
    order under the key ``_args``, as they change what the job does.
    """
    raw = load_raw_config(config_path, overrides)
    if job_args:
        raw = {**raw, "_args": list(job_args)}
    return config_hash(raw)


def build_submit_command(
    job: str,
    config_path: str | Path,
    overrides: Sequence[str] = (),
    address: str = DEFAULT_ADDRESS,
    runtime_env: str | Path = DEFAULT_RUNTIME_ENV,
    *,
    sub_id: str | None = None,
    working_dir: str | Path = ".",
    entrypoint_num_cpus: float | None = None,
    metadata: Mapping[str, str] | None = None,
    no_wait: bool = False,
    job_args: Sequence[str] = (),
) -> list[str]:
    """The argv of ``ray job submit`` for ``ray_jobs/<job>.py --config <config_path>``.

    Args:
        job: job name (``pretrain``, ``pseudo_label``, ...); see :func:`job_script`.
        config_path: the config as the job will see it: a path relative to ``working_dir``.
        overrides: ``key=value`` strings, passed on as repeated ``--set`` (each one argv item,
            so values with spaces survive ``ray job submit``'s quoting).
        address: the job server (dashboard) URL.
        runtime_env: the runtime-env YAML (excludes, env vars).
        sub_id: submission id; by default :func:`submission_id` of the effective config hash
            (which reads ``config_path``, relative to the current directory).
        working_dir: the directory uploaded with the job.
        entrypoint_num_cpus: CPUs reserved for the driver. None (the default) keeps the driver
            on the head node; a value schedules it on any node with that many free CPUs.
        metadata: string key/values attached to the job (``ray job list`` shows them).
        no_wait: return after submission instead of streaming the logs.
        job_args: further flags of the job script (``--output s3://...``), appended as given.
    """
    script = job_script(job)
    if sub_id is None:
        sub_id = submission_id(job, effective_config_hash(config_path, overrides, job_args))
    cmd = [
        "ray", "job", "submit",
        "--address", address,
        "--working-dir", str(working_dir),
        "--runtime-env", str(runtime_env),
        "--submission-id", sub_id,
    ]  # fmt: skip
    if entrypoint_num_cpus is not None:
        cmd += ["--entrypoint-num-cpus", f"{entrypoint_num_cpus:g}"]
    if metadata:
        cmd += ["--metadata-json", json.dumps(dict(metadata), sort_keys=True)]
    if no_wait:
        cmd.append("--no-wait")
    cmd += ["--", "python", script, "--config", Path(config_path).as_posix()]
    for item in overrides:
        cmd += ["--set", item]
    return cmd + list(job_args)


def auth_env(environ: Mapping[str, str] | None = None, home: Path | None = None) -> dict[str, str]:
    """Environment additions that make ``ray job submit`` send the cluster's auth token.

    Ray clients send a token only when ``RAY_AUTH_MODE=token``; without it a cluster with token
    auth answers "Missing authentication token". Returns ``{"RAY_AUTH_MODE": "token"}`` when a
    token is available (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``)
    and the caller has not chosen a mode; ``{}`` otherwise. An explicit ``RAY_AUTH_MODE``
    (``disabled`` included) is left alone.

    Raises:
        ConfigError: ``RAY_AUTH_TOKEN_PATH`` names a file that does not exist (Ray itself would
            abort on it).
    """
    env = os.environ if environ is None else environ
    if env.get("RAY_AUTH_MODE"):
        return {}
    if env.get("RAY_AUTH_TOKEN"):
        return {"RAY_AUTH_MODE": "token"}
    token_path = env.get("RAY_AUTH_TOKEN_PATH")
    if token_path:
        if not Path(token_path).expanduser().is_file():
            raise ConfigError(
                f"RAY_AUTH_TOKEN_PATH={token_path}: no such file; unset it or point it at the "
                "cluster's token"
            )
        return {"RAY_AUTH_MODE": "token"}
    default = (home / ".ray" / "auth_token") if home is not None else DEFAULT_TOKEN_FILE
    if default.expanduser().is_file():
        return {"RAY_AUTH_MODE": "token"}
    return {}


def resolve_address(flag: str | None, environ: Mapping[str, str] | None = None) -> str:
    """``--address``, else ``RAY_API_SERVER_ADDRESS``, else :data:`DEFAULT_ADDRESS`.

    ``RAY_ADDRESS`` is not used: it often holds a GCS address (``host:6379``), which the job
    API does not answer on.
    """
    env = os.environ if environ is None else environ
    return flag or env.get("RAY_API_SERVER_ADDRESS") or DEFAULT_ADDRESS


def _relative_to_workdir(path: str, working_dir: Path, flag: str) -> str:
    """``path`` relative to ``working_dir``: only files inside it are uploaded with the job."""
    resolved = Path(path).resolve()
    try:
        return resolved.relative_to(working_dir.resolve()).as_posix()
    except ValueError:
        raise ConfigError(
            f"{flag} {path}: must be inside the working directory {working_dir} (only that "
            "directory is uploaded with the job)"
        ) from None


def _check_uploaded(rel_path: str, runtime_env: str | Path, flag: str) -> None:
    """Refuse a file that the runtime env's ``excludes`` leave out of the upload."""
    import yaml

    try:  # the gitignore matcher Ray itself applies to `excludes` (vendored in ray)
        from ray._private.thirdparty.pathspec import PathSpec
    except ImportError:  # pragma: no cover - a future ray may drop the vendored copy
        from pathspec import PathSpec

    spec = yaml.safe_load(Path(runtime_env).read_text()) or {}
    patterns = PathSpec.from_lines("gitwildmatch", spec.get("excludes") or [])
    if patterns.match_file(rel_path):
        raise ConfigError(
            f"{flag} {rel_path}: excluded from the upload by {runtime_env} (excludes); move "
            "the file or change the excludes"
        )


def _run(args: argparse.Namespace) -> int:
    working_dir = Path(args.working_dir)
    script = job_script(args.job)
    if not (working_dir / script).is_file():
        raise ConfigError(f"JOB {args.job!r}: {working_dir / script} does not exist")
    config = _relative_to_workdir(args.config, working_dir, "--config")
    if not Path(args.runtime_env).is_file():
        raise ConfigError(f"--runtime-env: file not found: {args.runtime_env}")
    _check_uploaded(config, args.runtime_env, "--config")
    digest = effective_config_hash(args.config, args.overrides, args.job_args)
    from directsam import __version__

    metadata = {
        "directsam.job": args.job.replace("-", "_"),
        "directsam.config": config,
        "directsam.config_hash": digest,
        "directsam.overrides": json.dumps(args.overrides),
        "directsam.job_args": json.dumps(args.job_args),
        "directsam.version": __version__,
    }
    cmd = build_submit_command(
        args.job,
        config,
        args.overrides,
        resolve_address(args.address),
        args.runtime_env,
        sub_id=submission_id(args.job, digest),
        working_dir=args.working_dir,
        entrypoint_num_cpus=args.entrypoint_num_cpus,
        metadata=metadata,
        no_wait=args.no_wait,
        job_args=args.job_args,
    )
    extra_env = auth_env()
    shown = " ".join(f"{k}={v}" for k, v in extra_env.items())
    print((shown + " " if shown else "") + shlex.join(cmd), flush=True)
    if args.dry_run:
        return 0
    try:
        return subprocess.run(cmd, env={**os.environ, **extra_env}, check=False).returncode
    except FileNotFoundError:
        print("directsam submit: the `ray` CLI is not on PATH", file=sys.stderr)
        return 127


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``directsam submit JOB --config FILE [--set k=v]... [--job-args 'FLAGS']
    [--address URL] [--dry-run]``."""
    p = subparsers.add_parser(
        "submit",
        help="submit a ray_jobs/<JOB>.py run to a remote Ray cluster (ray job submit)",
        description=(
            "Build and run `ray job submit` for ray_jobs/<JOB>.py with the repository as "
            "working directory and cluster/runtime_env.yaml; the submission id is "
            "<JOB>-<config hash>-<UTC time>. See cluster/README.md."
        ),
    )
    p.add_argument("job", metavar="JOB", help="pretrain, pseudo_label, self_train, evaluate, sweep")
    p.add_argument("--config", required=True, help="job config YAML inside the working directory")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override passed on to the job (repeatable); part of the config hash",
    )
    p.add_argument(
        "--address",
        default=None,
        help=f"job server URL (default: $RAY_API_SERVER_ADDRESS, else {DEFAULT_ADDRESS})",
    )
    p.add_argument("--runtime-env", default=DEFAULT_RUNTIME_ENV, help="runtime env YAML")
    p.add_argument("--working-dir", default=".", help="directory uploaded with the job")
    p.add_argument(
        "--entrypoint-num-cpus",
        type=float,
        default=None,
        help="CPUs reserved for the driver (default: none, so the driver runs on the head)",
    )
    p.add_argument("--no-wait", action="store_true", help="do not stream the job's logs")
    p.add_argument("--dry-run", action="store_true", help="print the command, do not run it")
    p.add_argument(
        "--job-args",
        type=shlex.split,
        default=[],
        metavar="'FLAGS'",
        help="further flags for the job script as one quoted string, "
        "e.g. --job-args='--output s3://bucket/x --gpu-actors 8' (part of the config hash)",
    )
    p.set_defaults(func=_run)
