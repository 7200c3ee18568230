"""directsam.cli.submit: submission ids, the `ray job submit` command, auth env, and the CLI."""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from directsam.cli import submit
from directsam.config import ConfigError, config_hash

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- ids and hashes


def test_submission_id_format_and_utc():
    cest = timezone(timedelta(hours=2))
    now = datetime(2026, 11, 25, 12, 15, 0, tzinfo=cest)
    assert (
        submit.submission_id("pretrain", "3f2a9c01be", now) == "pretrain-3f2a9c01be-20261125-101500"
    )
    assert submit.submission_id("pseudo-label", "abc", now) == "pseudo_label-abc-20261125-101500"


def test_submission_id_defaults_to_now():
    before = datetime.now(timezone.utc).replace(microsecond=0)
    sid = submit.submission_id("evaluate", "0123456789")
    after = datetime.now(timezone.utc)
    m = re.fullmatch(r"evaluate-0123456789-(\d{8}-\d{6})", sid)
    assert m
    stamp = datetime.strptime(m.group(1), "%Y%m%d-%H%M%S").replace(tzinfo=timezone.utc)
    assert before <= stamp <= after


@pytest.mark.parametrize(
    ("job", "script"),
    [("pretrain", "ray_jobs/pretrain.py"), ("pseudo-label", "ray_jobs/pseudo_label.py"),
     ("self_train", "ray_jobs/self_train.py")],
)  # fmt: skip
def test_job_script(job, script):
    assert submit.job_script(job) == script


@pytest.mark.parametrize("job", ["", "Pretrain", "../etc/passwd", "pre train", "1job"])
def test_job_script_rejects_odd_names(job):
    with pytest.raises(ConfigError, match="JOB"):
        submit.job_script(job)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_config_hash_ignores_key_order_and_formatting(tmp_path):
    a = write(tmp_path / "a.yaml", "train:\n  lr: 1.0e-4\n  steps: 10\ndata: {name: sa1b}\n")
    b = write(
        tmp_path / "b.yaml",
        "# same settings\ndata:\n  name: sa1b\ntrain: {steps: 10, lr: 0.0001}\n",
    )
    assert submit.effective_config_hash(a) == submit.effective_config_hash(b)
    expected = config_hash({"train": {"lr": 1e-4, "steps": 10}, "data": {"name": "sa1b"}})
    assert submit.effective_config_hash(a) == expected
    assert re.fullmatch(r"[0-9a-f]{10}", expected)


def test_config_hash_covers_overrides(tmp_path):
    base = write(tmp_path / "base.yaml", "train:\n  lr: 1.0e-4\n")
    other = write(tmp_path / "other.yaml", "train:\n  lr: 5.0e-5\n")
    h = submit.effective_config_hash
    assert h(base, ["train.lr=5e-5"]) != h(base)
    # An override that sets what another file says gives that file's hash: settings, not text.
    assert h(base, ["train.lr=5e-5"]) == h(other)
    # "5e-5" is a string to PyYAML (YAML 1.1); read as the float the typed config will hold.
    assert submit.load_raw_config(base, ["train.lr=5e-5"])["train"]["lr"] == 5e-5
    assert submit.load_raw_config(write(tmp_path / "e.yaml", "lr: 1e-4\nname: run1e5\n")) == {
        "lr": 1e-4,
        "name": "run1e5",
    }
    assert h(base, ["model.spec=scratch:b0"]) == config_hash(
        {"train": {"lr": 1e-4}, "model": {"spec": "scratch:b0"}}
    )


def test_load_raw_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="--config: file not found"):
        submit.load_raw_config(tmp_path / "missing.yaml")
    bad = write(tmp_path / "list.yaml", "- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        submit.load_raw_config(bad)
    ok = write(tmp_path / "ok.yaml", "a: 1\n")
    with pytest.raises(ConfigError, match="--set 'a'"):
        submit.load_raw_config(ok, ["a"])


# ----------------------------------------------------------------------------- the command


def test_build_submit_command_exact():
    cmd = submit.build_submit_command(
        "pretrain",
        "configs/pretrain.yaml",
        ["train.lr=5e-5", "data.name=a b"],
        "http://127.0.0.1:8265",
        "cluster/runtime_env.yaml",
        sub_id="pretrain-abc-20261125-101500",
    )
    assert cmd == [
        "ray", "job", "submit",
        "--address", "http://127.0.0.1:8265",
        "--working-dir", ".",
        "--runtime-env", "cluster/runtime_env.yaml",
        "--submission-id", "pretrain-abc-20261125-101500",
        "--", "python", "ray_jobs/pretrain.py", "--config", "configs/pretrain.yaml",
        "--set", "train.lr=5e-5", "--set", "data.name=a b",
    ]  # fmt: skip


def test_build_submit_command_options():
    cmd = submit.build_submit_command(
        "evaluate", "configs/eval.yaml", sub_id="x", entrypoint_num_cpus=1,
        metadata={"b": "2", "a": "1"}, no_wait=True,
    )  # fmt: skip
    head = cmd[: cmd.index("--")]
    assert head[head.index("--entrypoint-num-cpus") + 1] == "1"
    assert json.loads(head[head.index("--metadata-json") + 1]) == {"a": "1", "b": "2"}
    assert "--no-wait" in head
    # Default: no CPU reservation, so Ray keeps the driver on the (0-CPU) head node.
    assert "--entrypoint-num-cpus" not in submit.build_submit_command(
        "evaluate", "c.yaml", sub_id="x"
    )


def test_job_args_follow_the_overrides_and_enter_the_hash(tmp_path):
    cfg = write(tmp_path / "p.yaml", "train: {lr: 1.0e-4}\n")
    cmd = submit.build_submit_command(
        "pseudo_label", "p.yaml", ["a=1"], sub_id="x", job_args=["--output", "s3://b/x y"]
    )
    assert cmd[cmd.index("--") :] == [
        "--", "python", "ray_jobs/pseudo_label.py", "--config", "p.yaml",
        "--set", "a=1", "--output", "s3://b/x y",
    ]  # fmt: skip
    h = submit.effective_config_hash
    assert h(cfg, job_args=["--gpu-actors", "8"]) != h(cfg, job_args=["--gpu-actors", "4"])
    assert h(cfg, job_args=[]) == h(cfg) == config_hash({"train": {"lr": 1e-4}})


def test_build_submit_command_derives_the_id_from_the_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "configs" / "p.yaml", "train: {lr: 1.0e-4}\n")
    cmd = submit.build_submit_command("pretrain", "configs/p.yaml", ["train.lr=2e-4"])
    sid = cmd[cmd.index("--submission-id") + 1]
    digest = submit.effective_config_hash("configs/p.yaml", ["train.lr=2e-4"])
    assert re.fullmatch(rf"pretrain-{digest}-\d{{8}}-\d{{6}}", sid)


def test_rays_own_cli_parses_the_command():
    """The argv goes through `ray job submit`'s own click parser (flag names of Ray 2.60)."""
    from ray.dashboard.modules.dashboard_sdk import parse_runtime_env_args
    from ray.dashboard.modules.job.cli import submit as ray_submit

    cmd = submit.build_submit_command(
        "pretrain", "configs/pretrain.yaml", ["data.name=a b"], sub_id="pretrain-abc-1",
        entrypoint_num_cpus=1, metadata={"directsam.job": "pretrain"}, no_wait=True,
    )  # fmt: skip
    assert cmd[:3] == ["ray", "job", "submit"]
    ctx = ray_submit.make_context("submit", cmd[3:])
    p = ctx.params
    assert p["address"] == submit.DEFAULT_ADDRESS
    assert p["submission_id"] == "pretrain-abc-1"
    assert p["working_dir"] == "." and p["runtime_env"] == "cluster/runtime_env.yaml"
    assert p["entrypoint_num_cpus"] == 1.0 and p["no_wait"] is True
    assert json.loads(p["metadata_json"]) == {"directsam.job": "pretrain"}
    # Ray joins the entrypoint with shlex.join and runs it in a shell: the override survives.
    entry = shlex.split(shlex.join(p["entrypoint"]))
    assert entry == ["python", "ray_jobs/pretrain.py", "--config", "configs/pretrain.yaml",
                     "--set", "data.name=a b"]  # fmt: skip
    # ...and the runtime env Ray builds from our file + --working-dir.
    env = parse_runtime_env_args(
        runtime_env=str(REPO / p["runtime_env"]), working_dir=p["working_dir"]
    )
    assert env["working_dir"] == "." and "/.venv/" not in env["excludes"]
    assert ".venv/" in env["excludes"] and "/data/" in env["excludes"]


# ----------------------------------------------------------------------------- auth and address


def test_auth_env_rules(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    assert submit.auth_env({}, home=home) == {}
    assert submit.auth_env({"RAY_AUTH_TOKEN": "t"}, home=home) == {"RAY_AUTH_MODE": "token"}
    token = write(tmp_path / "tok", "t")
    assert submit.auth_env({"RAY_AUTH_TOKEN_PATH": str(token)}, home=home) == {
        "RAY_AUTH_MODE": "token"
    }
    with pytest.raises(ConfigError, match="RAY_AUTH_TOKEN_PATH"):
        submit.auth_env({"RAY_AUTH_TOKEN_PATH": str(tmp_path / "nope")}, home=home)
    write(home / ".ray" / "auth_token", "t")
    assert submit.auth_env({}, home=home) == {"RAY_AUTH_MODE": "token"}
    # An explicit choice wins, including "disabled" (tests, clusters without auth).
    assert submit.auth_env({"RAY_AUTH_MODE": "disabled", "RAY_AUTH_TOKEN": "t"}, home=home) == {}
    assert submit.auth_env({"RAY_AUTH_MODE": "token"}, home=home) == {}


def test_auth_env_reads_home_by_default(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    environ = {}
    assert submit.auth_env(environ) == {}
    write(tmp_path / ".ray" / "auth_token", "t")
    assert submit.auth_env(environ) == {"RAY_AUTH_MODE": "token"}


def test_resolve_address():
    assert (
        submit.resolve_address("http://h:1", {"RAY_API_SERVER_ADDRESS": "http://e:2"})
        == "http://h:1"
    )
    assert submit.resolve_address(None, {"RAY_API_SERVER_ADDRESS": "http://e:2"}) == "http://e:2"
    assert submit.resolve_address(None, {"RAY_ADDRESS": "10.0.0.1:6379"}) == submit.DEFAULT_ADDRESS


# ----------------------------------------------------------------------------- the CLI


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A minimal working directory: a job script, a config, the real runtime env; no token."""
    root = tmp_path / "repo"
    write(root / "ray_jobs" / "pretrain.py", "print('hi')\n")
    write(root / "configs" / "p.yaml", "train: {lr: 1.0e-4}\n")
    write(root / "outputs" / "p.yaml", "train: {lr: 1.0e-4}\n")
    write(
        root / "cluster" / "runtime_env.yaml", (REPO / "cluster" / "runtime_env.yaml").read_text()
    )
    monkeypatch.chdir(root)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for var in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_API_SERVER_ADDRESS"):
        monkeypatch.delenv(var, raising=False)
    return root


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="directsam")
    submit.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_cli_dry_run_prints_the_command(checkout, capsys):
    args = parse(
        ["submit", "pretrain", "--config", "configs/p.yaml", "--set", "train.lr=2e-4", "--dry-run"]
    )
    assert args.func(args) == 0
    printed = shlex.split(capsys.readouterr().out.strip())
    assert printed[:3] == ["ray", "job", "submit"]  # no token anywhere: no RAY_AUTH_MODE prefix
    digest = submit.effective_config_hash("configs/p.yaml", ["train.lr=2e-4"])
    sid = printed[printed.index("--submission-id") + 1]
    assert sid.startswith(f"pretrain-{digest}-")
    meta = json.loads(printed[printed.index("--metadata-json") + 1])
    assert meta["directsam.config_hash"] == digest and meta["directsam.config"] == "configs/p.yaml"
    assert printed[printed.index("--") :] == [
        "--", "python", "ray_jobs/pretrain.py", "--config", "configs/p.yaml", "--set", "train.lr=2e-4",
    ]  # fmt: skip


def test_cli_runs_ray_with_token_mode(checkout, tmp_path, monkeypatch):
    write(tmp_path / "home" / ".ray" / "auth_token", "t")
    calls = []

    def fake_run(cmd, env, check):
        calls.append((cmd, env))
        return subprocess.CompletedProcess(cmd, 3)

    monkeypatch.setattr(submit.subprocess, "run", fake_run)
    args = parse(
        ["submit", "pretrain", "--config", "configs/p.yaml", "--address", "http://h:8265",
         "--job-args=--output 's3://b/x y' --max-steps 5"]
    )  # fmt: skip
    assert args.func(args) == 3  # ray's exit status is passed through
    ((cmd, env),) = calls
    assert env["RAY_AUTH_MODE"] == "token"
    assert cmd[cmd.index("--address") + 1] == "http://h:8265"
    assert cmd[-4:] == ["--output", "s3://b/x y", "--max-steps", "5"]
    meta = json.loads(cmd[cmd.index("--metadata-json") + 1])
    assert json.loads(meta["directsam.job_args"]) == ["--output", "s3://b/x y", "--max-steps", "5"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["evaluate", "--config", "configs/p.yaml"], "ray_jobs/evaluate.py does not exist"),
        (["pretrain", "--config", "/etc/hostname"], "must be inside the working directory"),
        (["pretrain", "--config", "outputs/p.yaml"], "excluded from the upload"),
        (["pretrain", "--config", "configs/missing.yaml"], "must be inside|file not found"),
        (["pretrain", "--config", "configs/p.yaml", "--runtime-env", "nope.yaml"], "--runtime-env"),
    ],
)
def test_cli_refuses_what_would_fail_on_the_cluster(checkout, argv, message):
    args = parse(["submit", *argv, "--dry-run"])
    with pytest.raises(ConfigError, match=message):
        args.func(args)
