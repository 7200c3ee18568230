"""The command wing's shared flag groups (``directsam.cli.flags``): every command that takes a
model offers the same flags with the same defaults, taken from the config dataclasses and
``directsam.model.spec``; ``directsam --help`` imports nothing heavy."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from directsam.cli import build_parser
from directsam.labeling.config import DTYPES, ModelConfig
from directsam.model.spec import DEFAULT_RESOLUTION, DEFAULT_THRESHOLD

REPO = Path(__file__).resolve().parents[1]


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {opt: a for a in parser._actions for opt in a.option_strings}


@pytest.mark.parametrize("command", ["predict", "segment"])
def test_direct_model_commands_share_flags_and_defaults(command):
    """predict and segment take the model directly: same flags, one set of defaults."""
    actions = _actions(_commands()[command])
    assert actions["--checkpoint"].required
    assert actions["--device"].default == ModelConfig().device == "auto"
    assert actions["--dtype"].default == ModelConfig().dtype == "auto"
    assert tuple(actions["--dtype"].choices) == DTYPES
    for flag, fallback in (
        ("--threshold", DEFAULT_THRESHOLD),
        ("--resolution", DEFAULT_RESOLUTION),
    ):
        assert actions[flag].default is None  # = the checkpoint's directsam.json
        assert f"else {fallback})" in actions[flag].help
    assert actions["--threshold"].type is float and actions["--resolution"].type is int
    for flag in ("--max-tokens", "--min-area"):
        assert actions[flag].default is None and actions[flag].type is int
    # the help of each shared flag is one text
    other = _actions(_commands()["predict" if command == "segment" else "segment"])
    for flag in ("--checkpoint", "--threshold", "--resolution", "--device", "--dtype",
                 "--max-tokens", "--min-area"):  # fmt: skip
        assert actions[flag].help == other[flag].help, flag


def test_allow_pickle_is_one_flag_with_one_help():
    helps = {
        name: _actions(p)["--allow-pickle"].help
        for name, p in _commands().items()
        if "--allow-pickle" in _actions(p)
    }
    assert set(helps) == {"predict", "export"}
    assert len(set(helps.values())) == 1
    assert all(_actions(_commands()[n])["--allow-pickle"].default is False for n in helps)


def test_config_jobs_leave_defaults_to_the_config():
    """Job flags are shorthands: None means "not given", so the dataclass default applies."""
    from directsam.cli.label import add_label_args, build_config
    from directsam.labeling.config import LabelConfig

    commands = _commands()
    for name in ("label", "pretrain", "self-train", "evaluate", "sweep"):
        for flag in ("--checkpoint", "--resolution", "--threshold", "--dtype", "--device",
                     "--tracking-uri", "--experiment", "--address"):  # fmt: skip
            action = _actions(commands[name]).get(flag)
            if action is not None:
                assert action.default is None, (name, flag)
    parser = argparse.ArgumentParser()
    add_label_args(parser)
    args = parser.parse_args(["--input", "x", "--source", "sa1b", "--output", "o",
                              "--checkpoint", "scratch:tiny"])  # fmt: skip
    cfg = build_config(args)
    assert (cfg.model.threshold, cfg.model.resolution) == (
        LabelConfig().model.threshold,
        LabelConfig().model.resolution,
    )


def test_every_job_has_the_same_ray_tracking_and_smoke_flags():
    commands = _commands()
    for name in ("label", "pretrain", "self-train", "evaluate", "sweep"):
        actions = _actions(commands[name])
        for flag in (
            "--address",
            "--tracking-uri",
            "--experiment",
            "--no-tracking",
            "--smoke-test",
        ):
            assert flag in actions, (name, flag)
    for name in ("segment", "fetch", "fetch-sa1b"):
        assert _actions(commands[name])["--address"].default is None


def test_smoke_tests_share_one_helper():
    """No command module (nor the demo) builds its own smoke sample, preset path or sqlite URI;
    the demo generates its own three-part sample, so only its URI and presets are checked."""
    wing = REPO / "directsam" / "cli"
    for path in [*wing.glob("*.py"), REPO / "directsam" / "demo.py"]:
        if path.name == "smoke.py":
            continue
        text = path.read_text()
        if path.name != "demo.py":
            assert "make_sample(" not in text or path.name == "sample.py", path.name
        assert "sqlite:///" not in text.replace("sqlite:///./mlflow.db", ""), path.name
        assert '/ "smoke"' not in text and '"configs/smoke/{' not in text, path.name


def test_one_error_wrapper(capsys):
    from directsam.cli.command import run_command
    from directsam.config import ConfigError

    def bad(_):
        raise ConfigError("--threshold must be in (0, 1), got 2")

    assert run_command("directsam predict", bad, argparse.Namespace()) == 2
    assert capsys.readouterr().err == (
        "directsam predict: error: --threshold must be in (0, 1), got 2\n"
    )
    assert run_command("x", lambda _: None, argparse.Namespace()) == 0
    assert run_command("x", lambda _: 1, argparse.Namespace()) == 1


def test_help_imports_nothing_heavy():
    code = (
        "import sys, json\n"
        "from directsam.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "for argv in (['label', '--help'], ['pretrain', '--help'], ['predict', '--help']):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        "heavy = ('torch', 'ray', 'mlflow', 'transformers')\n"
        "print(json.dumps([h for h in heavy if h in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
