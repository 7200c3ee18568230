"""The S3 test sample's shape, the labeling job the S3 tests run, and their row check."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tests.labeling.helpers import label_config, mask

NUM_IMAGES, PER_TAR = 24, 8
TARS = [f"sa_{k:06d}.tar" for k in range(NUM_IMAGES // PER_TAR)]
QUIET = {"log": lambda *_: None}


def s3_config(input: str, out: Path, **kw):
    """The fast CPU labeling job of ``tests/labeling/helpers.py`` with quick retries."""
    cfg = label_config("sa1b", input, out, dataset="sa", **kw)
    cfg.object_store.backoff_s = 0.05
    return cfg


def assert_rows_match(rows, reference):
    """Same ids, errors and human boundaries as the reference; pseudo boundaries agree."""
    assert sorted(rows) == sorted(reference) and len(rows) == NUM_IMAGES
    for key, row in rows.items():
        ref = reference[key]
        assert row["error"] == ref["error"] and row["human_boundary"] == ref["human_boundary"]
        assert row["source_uri"].startswith("s3://data/sa1b/tars/sa_")  # no query in the rows
        assert row["source_uri"].split("::")[1] == ref["source_uri"].split("::")[1]
        agree = (mask(row["pseudo_boundary"]) == mask(ref["pseudo_boundary"])).mean()
        assert agree > 0.999  # same model and pixels; only batch composition may differ


def label_argv(input: str, out: Path | str, *extra: str, dataset: str = "sa") -> list[str]:
    """Flags of ``directsam label`` for the same job as :func:`s3_config`."""
    return [
        "--source", "sa1b", "--input", input, "--dataset", dataset, "--output", str(out),
        "--checkpoint", "scratch:tiny", "--resolution", "64", "--thickness", "3",
        "--device", "cpu", "--dtype", "fp32", "--batch-size", "4", "--rows-per-shard", "4",
        "--gpu-actors", "1", "--no-tracking", "--set", "compute.decode_batch_size=4", *extra,
    ]  # fmt: skip


def label_subprocess_args(input: str, out: Path | str, *extra: str) -> tuple[list[str], dict]:
    """(command, environment) of the label job as its own process with its own local Ray."""
    cmd = [sys.executable, "-m", "directsam.cli", "label", *label_argv(input, out, *extra)]
    return cmd, {**os.environ, "RAY_ADDRESS": "", "RAY_AUTH_MODE": "disabled"}
