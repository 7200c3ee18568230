"""``directsam predict`` end to end on generated JPEGs with scratch:tiny."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from PIL import Image

from directsam.cli.predict import register
from directsam.config import ConfigError
from directsam.inference.overlay import overlay_tokens
from tests.inference.synthetic import textured_image


def run_cli(argv):
    parser = argparse.ArgumentParser(prog="directsam")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["predict", *argv])
    return args.func(args)


@pytest.fixture
def photos(tmp_path):
    good = tmp_path / "in" / "street.jpg"
    good.parent.mkdir()
    Image.fromarray(textured_image(150, 200, seed=4)).save(good, quality=90)
    other = tmp_path / "in" / "sub" / "street.jpg"  # same stem, another folder
    other.parent.mkdir()
    Image.fromarray(textured_image(96, 128, seed=5)).save(other, quality=90)
    bad = tmp_path / "in" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 this is not a jpeg")
    return good, other, bad


BASE = [
    "--checkpoint",
    "scratch:tiny",
    "--resolution",
    "64",
    "--threshold",
    "0.5",
    "--device",
    "cpu",
]


def test_end_to_end_outputs(tmp_path, photos, capsys):
    good, other, bad = photos
    out = tmp_path / "out"
    missing = tmp_path / "in" / "missing.png"
    code = run_cli([str(good), str(bad), str(missing), str(other), *BASE, "--output", str(out)])
    assert code == 1  # the bad files fail, the good ones are still written
    err = capsys.readouterr().err
    assert f"image_decode: {bad}" in err and f"read_failed: {missing}" in err

    lines = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert [x["image"] for x in lines] == [str(good), str(bad), str(missing), str(other)]
    assert lines[1]["error"].startswith("image_decode:") and "num_tokens" not in lines[1]
    first = lines[0]
    assert (first["height"], first["width"]) == (150, 200)
    assert first["checkpoint"] == "scratch:tiny" and first["threshold"] == 0.5
    assert first["checkpoint_sha"] == "scratch:tiny:0"

    boundary = np.asarray(Image.open(out / "street_boundary.png"))
    assert boundary.dtype == np.uint8 and boundary.shape == (150, 200)
    tokens_img = Image.open(out / "street_tokens.png")
    tokens = np.asarray(tokens_img)
    assert tokens_img.mode.startswith("I;16") and tokens.shape == (150, 200)
    assert int(tokens.max()) == first["num_tokens"] > 0
    # Label 0 is exactly the boundary: probs >= 0.5 <=> rint(probs * 255) >= 128.
    assert np.array_equal(tokens == 0, boundary >= 128)
    overlay = np.asarray(Image.open(out / "street_overlay.png"))
    assert overlay.shape == (150, 200, 3)
    # The second street.jpg does not overwrite the first.
    assert np.asarray(Image.open(out / "street-1_tokens.png")).shape == (96, 128)


def test_good_run_exits_zero_and_appends(tmp_path, photos):
    good, _, _ = photos
    out = tmp_path / "out"
    assert run_cli([str(good), *BASE, "--output", str(out)]) == 0
    assert run_cli([str(good), *BASE, "--output", str(out), "--pyramid"]) == 0
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 2


def test_denoise_flags_cap_tokens(tmp_path, photos):
    good, _, _ = photos
    out = tmp_path / "out"
    assert run_cli([str(good), *BASE, "--output", str(out), "--max-tokens", "3"]) == 0
    line = json.loads((out / "predictions.jsonl").read_text())
    tokens = np.asarray(Image.open(out / "street_tokens.png"))
    assert 1 <= line["num_tokens"] <= 3 and int(tokens.max()) == line["num_tokens"]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--threshold", "1.5"], r"--threshold must be in \(0, 1\)"),
        (["--threshold", "0"], r"--threshold must be in \(0, 1\)"),
        (["--resolution", "8"], "--resolution must be >= 32"),
        (["--max-tokens", "0"], "--max-tokens must be >= 1"),
        (["--min-area", "-2"], "--min-area must be >= 0"),
    ],
)
def test_flag_errors_name_the_flag(tmp_path, photos, flags, message):
    argv = [str(photos[0]), "--checkpoint", "scratch:tiny", "--output", str(tmp_path), *flags]
    with pytest.raises(ConfigError, match=message):
        run_cli(argv)


def test_bad_checkpoint_names_the_flag(tmp_path, photos):
    with pytest.raises(ConfigError, match="--checkpoint scratch:b9"):
        run_cli([str(photos[0]), "--checkpoint", "scratch:b9", "--output", str(tmp_path)])


def test_dispatcher_reports_flag_errors(tmp_path, photos, capsys, monkeypatch):
    import directsam.cli
    from directsam.cli import main

    monkeypatch.setattr(directsam.cli, "COMMANDS", (directsam.cli.predict,))
    argv = ["predict", str(photos[0]), *BASE[:4], "--threshold", "2", "--output", str(tmp_path)]
    assert main(argv) == 2
    assert "--threshold must be in (0, 1)" in capsys.readouterr().err


def test_overlay_colours_and_boundary():
    image = np.full((4, 4, 3), 100, np.uint8)
    labels = np.array([[1, 1, 0, 2]] * 4, np.int32)
    out = overlay_tokens(image, labels)
    assert np.all(out[:, 2] == 255)
    assert np.all(out[:, 0] == out[0, 0]) and not np.array_equal(out[0, 0], out[0, 3])


def _subcommands():
    from directsam.cli import build_parser

    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return parser, sorted(action.choices)


def test_core_commands_are_registered_with_the_dispatcher():
    _, names = _subcommands()
    assert {"make-sample", "predict"} <= set(names)


@pytest.mark.parametrize(
    "command, expected",
    [
        ([], ["make-sample", "predict"]),
        (["make-sample"], ["--output", "--num-images", "--seed", "--kind", "sa1b", "coco"]),
        (["predict"], ["IMAGE", "--checkpoint", "--resolution", "--threshold", "--output"]),
    ],
)
def test_help_of_core_commands(command, expected, capsys):
    from directsam.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for word in expected:
        assert word in out


def test_help_works_on_every_registered_command(capsys):
    """`directsam COMMAND --help` exits 0 with a usage line for every command the script lists."""
    parser, names = _subcommands()
    for name in names:
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args([name, "--help"])
        assert exit_info.value.code == 0, name
        assert f"usage: directsam {name}" in capsys.readouterr().out, name
