"""Bad command-line input, table-driven: every job stops before Ray starts, with exit code 2 and
a message naming the flag (one line for the preflight checks), never a traceback.

The commands run in this process through ``directsam.cli.main``; ``init_ray`` and ``ray.init``
are replaced by a trap, so a case that would start Ray fails. Each case runs in its own working
directory, which must stay free of MLflow stores (``--no-tracking`` never creates one, and
checking ``--tracking-uri`` never creates the sqlite file it names).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SMOKE_PRETRAIN = str(REPO / "configs/smoke/pretrain.yaml")


class RayStarted(BaseException):
    """Raised by the trap: a job tried to start Ray (BaseException: no job code catches it)."""


@pytest.fixture(scope="module")
def paths(tmp_path_factory, sample_root) -> dict[str, str]:
    """Inputs of every kind a user can get wrong."""
    from tests.tracking.server import free_port

    root = tmp_path_factory.mktemp("bad_flags")
    (root / "empty").mkdir()
    (root / "notes.txt").write_text("not an image\n")
    (root / "ann.json").write_text("{}")
    noweights = root / "noweights"
    noweights.mkdir()
    (noweights / "config.json").write_text("{}")
    noconfig = root / "noconfig"
    noconfig.mkdir()
    (noconfig / "model.safetensors").write_bytes(b"\0" * 16)
    pickle = root / "pickle_only"
    pickle.mkdir()
    (pickle / "config.json").write_text("{}")
    (pickle / "pytorch_model.bin").write_bytes(b"\0" * 16)
    (root / "store.db").write_bytes(b"")
    return {
        "sample": str(sample_root),
        "empty": str(root / "empty"),
        "text": str(root / "notes.txt"),
        "json": str(root / "ann.json"),
        "missing": str(root / "missing"),
        "noweights": str(noweights),
        "noconfig": str(noconfig),
        "pickle": str(pickle),
        "out": str(root / "out"),
        "closed": str(free_port()),
        "root": str(root),
    }


LABEL = ("label --source sa1b --input {sample} --output {out} --checkpoint scratch:tiny "
         "--resolution 64 --no-tracking")  # fmt: skip
PRETRAIN = (f"pretrain --config {SMOKE_PRETRAIN} --data {{sample}} --init scratch:tiny "
            "--storage-path {out} --no-tracking")  # fmt: skip
SELF_TRAIN = ("self-train --data {sample} --init scratch:tiny --storage-path {out} "
              "--no-tracking")  # fmt: skip
EVALUATE = ("evaluate --checkpoint scratch:tiny --source sa1b --input {sample} --output {out} "
            "--cache-dir {out}/cache --no-tracking")  # fmt: skip
SWEEP = EVALUATE.replace("evaluate", "sweep", 1)
UNREACHABLE = "http://127.0.0.1:{closed}"

# (case id, base command, flag -> value (None drops the flag), flag named, words in the message,
#  the message is one line)
CASES = [
    ("label-input-empty", LABEL, {"--input": "{empty}"}, "--input", "empty"),
    ("label-input-not-tar", LABEL, {"--input": "{text}"}, "--input", "not a .tar"),
    ("label-input-missing", LABEL, {"--input": "{missing}"}, "--input", "no such"),
    ("label-output-is-file", LABEL, {"--output": "{text}"}, "--output", "a file"),
    ("label-output-under-file", LABEL, {"--output": "{text}/x"}, "--output", "cannot create"),
    ("label-ckpt-no-weights", LABEL, {"--checkpoint": "{noweights}"}, "--checkpoint", "no weights"),
    ("label-ckpt-no-config", LABEL, {"--checkpoint": "{noconfig}"}, "--checkpoint", "config.json"),
    ("label-ckpt-pickle", LABEL, {"--checkpoint": "{pickle}"}, "--checkpoint", "pickle"),
    ("label-ckpt-missing", LABEL, {"--checkpoint": "{missing}"}, "--checkpoint", "no such"),
    ("label-ckpt-is-file", LABEL, {"--checkpoint": "{text}"}, "--checkpoint", "is a file"),
    ("label-ckpt-scratch", LABEL, {"--checkpoint": "scratch:b99"}, "--checkpoint", "scratch:SIZE"),
    ("label-ckpt-unregistered", LABEL, {"--checkpoint": "models:/nope/1"}, "--checkpoint",
     "registry"),
    ("label-ckpt-hub-uncached", LABEL, {"--checkpoint": "owner/not-cached"}, "--checkpoint",
     "Hugging Face cache"),
    ("label-uri-no-scheme", LABEL, {"--no-tracking": None, "--tracking-uri": "127.0.0.1:5000"},
     "--tracking-uri", "missing http://"),
    ("label-uri-file-store", LABEL, {"--no-tracking": None, "--tracking-uri": "./mlruns"},
     "--tracking-uri", "file store"),
    ("label-uri-bad-scheme", LABEL, {"--no-tracking": None, "--tracking-uri": "htp://h:5000"},
     "--tracking-uri", "unsupported scheme"),
    ("label-uri-unreachable", LABEL, {"--no-tracking": None, "--tracking-uri": UNREACHABLE},
     "--tracking-uri", "unreachable"),
    ("label-uri-sqlite-under-file", LABEL,
     {"--no-tracking": None, "--tracking-uri": "sqlite:///{text}/m.db"}, "--tracking-uri",
     "cannot create"),
    ("label-coco-json-input", LABEL, {"--source": "coco", "--input": "{json}"}, "--input",
     "--annotations"),
    ("label-coco-annotations-missing", LABEL, {"--source": "coco", "--annotations": "{missing}"},
     "--annotations", "no such"),
    ("label-labelmap-labels-missing", LABEL, {"--source": "labelmap", "--labels": "{missing}"},
     "--labels", "no such"),
    ("label-threshold", LABEL, {"--threshold": "1.5"}, "--threshold", "(0, 1)", False),
    ("pretrain-data-missing", PRETRAIN, {"--data": "{missing}"}, "--data", "no such"),
    ("pretrain-data-not-tar", PRETRAIN, {"--data": "{text}"}, "--data", "not a .tar"),
    ("pretrain-storage-is-file", PRETRAIN, {"--storage-path": "{text}"}, "--storage-path",
     "a file"),
    ("pretrain-init-scratch", PRETRAIN, {"--init": "scratch:b99"}, "--init", "scratch:SIZE"),
    ("pretrain-init-missing", PRETRAIN, {"--init": "{missing}"}, "--init", "no such"),
    ("pretrain-uri-no-scheme", PRETRAIN, {"--no-tracking": None, "--tracking-uri": "localhost:5000"},
     "--tracking-uri", "missing http://"),
    ("self-train-data-empty", SELF_TRAIN, {"--data": "{empty}"}, "--data", "empty"),
    ("self-train-init-unregistered", SELF_TRAIN, {"--init": "models:/nope/1"}, "--init",
     "registry"),
    ("evaluate-input-missing", EVALUATE, {"--input": "{missing}"}, "--input", "no such"),
    ("evaluate-cache-dir-is-file", EVALUATE, {"--cache-dir": "{text}"}, "--cache-dir", "a file"),
    ("evaluate-ckpt-no-weights", EVALUATE, {"--checkpoint": "{noweights}"}, "--checkpoint",
     "no weights"),
    ("sweep-output-is-file", SWEEP, {"--output": "{text}"}, "--output", "a file"),
    ("sweep-uri-unreachable", SWEEP, {"--no-tracking": None, "--tracking-uri": UNREACHABLE},
     "--tracking-uri", "unreachable"),
    ("compare-store-missing", "compare --experiment e", {"--tracking-uri":
     "sqlite:///{root}/none.db"}, "--tracking-uri", "no MLflow store"),
    ("compare-output-is-folder", "compare --experiment e --tracking-uri sqlite:///{root}/store.db",
     {"--output": "{empty}"}, "--output", "a folder"),
    ("predict-ckpt-scratch", "predict {text} --output {out} --checkpoint scratch:nope", {},
     "--checkpoint", "scratch:SIZE"),
    ("predict-output-is-file", "predict {text} --output {text} --checkpoint scratch:tiny", {},
     "--output", "a file"),
    ("segment-image-missing", "segment --image {missing} --output {out} --checkpoint scratch:tiny",
     {}, "--image", "no such"),
    ("segment-input-empty", "segment --input {empty} --output {out} --checkpoint scratch:tiny", {},
     "--input", "empty"),
    ("export-ckpt-missing", "export --checkpoint {missing} --output {out}", {}, "--checkpoint",
     "no such"),
    ("export-store-missing", "export --checkpoint scratch:tiny --output {out} --experiment e "
     "--tracking-uri sqlite:///{root}/none.db", {}, "--tracking-uri", "no MLflow store"),
    ("replay-spool-missing", "tracking replay {missing}", {}, "SPOOL", "no such"),
    ("replay-spool-empty", "tracking replay {empty}", {}, "SPOOL", "no spool files"),
]  # fmt: skip


def _argv(base: str, changes: dict[str, str | None], paths: dict[str, str]) -> list[str]:
    """``base`` with each flag in ``changes`` replaced (or dropped when None, or appended)."""
    argv = base.split()
    for flag, value in changes.items():
        if flag in argv:
            i = argv.index(flag)
            takes_value = i + 1 < len(argv) and not argv[i + 1].startswith("--")
            del argv[i : i + (2 if takes_value else 1)]
        if value is not None:
            argv += [flag, value]
    return [a.format(**paths) for a in argv]


def test_the_table_covers_every_command():
    assert len(CASES) >= 25
    commands = {case[1].split()[0] for case in CASES}
    assert commands >= {"label", "pretrain", "self-train", "evaluate", "sweep", "compare"}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_flag_fails_before_ray_naming_the_flag(case, paths, tmp_path, monkeypatch, capsys):
    import ray

    import directsam.raycluster
    from directsam.cli import main

    _, base, changes, flag, words, *rest = case
    one_line = rest[0] if rest else True

    def trap(*args, **kwargs):
        raise RayStarted(f"Ray started: {args} {kwargs}")

    monkeypatch.setattr(directsam.raycluster, "init_ray", trap)
    monkeypatch.setattr(ray, "init", trap)
    monkeypatch.chdir(tmp_path)
    code = main(_argv(base, changes, paths))
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    assert re.search(rf"(^|\s){re.escape(flag)}[\s:]", err), err  # the flag, not a longer one
    assert words in err, err
    if one_line:
        assert len(err.strip().splitlines()) == 1, err
    assert not ray.is_initialized()
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no mlflow.db, mlruns, outputs
