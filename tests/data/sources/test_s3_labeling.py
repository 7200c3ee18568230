"""Labeling and stage-1 training from ``s3://`` on a real S3-protocol server (moto, loopback).

The sample (3 SA-1B tars of 8 images) is uploaded to the server; every request the server
receives is logged. Labeling streams each tar with one GET (no HEAD, no per-member request),
a run killed mid-way is resumed by ranged GETs of the unfinished tars only, the endpoint works
from the URI query (no environment), from ``--s3-endpoint``, and training reads the same way.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import numpy as np
import psutil
import pytest

from directsam.labeling.pipeline import run_labeling
from directsam.labeling.writer import META_CHUNK, part_metadata
from tests.data.sources.s3cases import (
    NUM_IMAGES,
    PER_TAR,
    QUIET,
    TARS,
    assert_rows_match,
    label_argv,
    label_subprocess_args,
    s3_config,
)
from tests.data.sources.s3server import object_reads
from tests.labeling.helpers import read_generation
from tests.reliability.helpers import wait_for

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.usefixtures("aws_env")]


def test_labeling_streams_each_tar_with_one_request(ray_local, server, reference, tmp_path):
    server.reset()
    summary = run_labeling(s3_config(server.query("s3://data/sa1b/tars"), tmp_path), **QUIET)
    log = server.requests()
    assert summary["complete"] and summary["num_rows"] == NUM_IMAGES and summary["plan"] == "tars"
    assert_rows_match(read_generation(summary["generation"]), reference)
    # One LIST for the plan, then exactly one whole-object GET per tar; nothing per image.
    reads = object_reads(log)
    assert sorted(r["path"].rsplit("/", 1)[1] for r in reads) == TARS
    assert {r["range"] for r in reads} == {"bytes=0-"}
    assert [r["method"] for r in log].count("HEAD") == 0
    assert len(log) == 1 + len(TARS)
    assert len(log) / NUM_IMAGES < 0.2
    parts = sorted(p.name for p in Path(summary["generation"]).glob("part-*.parquet"))
    assert parts == [f"part-sa_00000{t}-0000{c}.parquet" for t in range(3) for c in range(2)]


def _kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the job and every process it started (its own local Ray), by pid."""
    procs = [psutil.Process(proc.pid)]
    try:
        procs += procs[0].children(recursive=True)
    except psutil.NoSuchProcess:
        pass
    for p in procs:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=30)


def test_killed_run_resumes_with_ranged_reads_of_unfinished_tars(
    ray_local, server, reference, tmp_path
):
    out = tmp_path / "out"
    gen = out / "sa" / "gen-scratch-tiny-0"
    chunks = PER_TAR // 2  # chunks of 2 images and batches of 1: the kill lands mid-run
    cmd, env = label_subprocess_args(
        "s3://data/sa1b/tars", out, "--s3-endpoint", server.endpoint, "--rows-per-shard", "2",
        "--batch-size", "1", "--set", "compute.decode_batch_size=1",
        "--set", "compute.lease_ttl_s=2",
    )  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        first = wait_for(lambda: sorted(gen.glob("part-*.parquet")), 240)
        assert first, "the job wrote no shard before the timeout"
    finally:
        _kill_tree(proc)
    assert (gen / "_lease.json").exists()  # the killed run's lease stays behind...
    written = {p.name: part_metadata(str(p)) for p in gen.glob("part-*.parquet")}
    total = chunks * len(TARS)
    assert 0 < len(written) < total and not (gen / "_SUCCESS.json").exists()

    # What the re-run must read, per tar: nothing when every chunk is on disk, else from the
    # end of the chunk before the first missing one (from byte 0 when that is chunk 0).
    expected = {}
    for t, tar in enumerate(TARS):
        missing = [c for c in range(chunks) if f"part-sa_{t:06d}-{c:05d}.parquet" not in written]
        if not missing:
            continue
        if missing[0] == 0:
            expected[tar] = "bytes=0-"
            continue
        meta = written[f"part-sa_{t:06d}-{missing[0] - 1:05d}.parquet"][1][META_CHUNK]
        end = json.loads(meta)["end"]
        assert end[0] == 0 and end[1] > 0
        expected[tar] = f"bytes={end[1]}-"

    server.reset()
    cfg = s3_config("s3://data/sa1b/tars", out)
    cfg.object_store.endpoint = server.endpoint  # as --s3-endpoint: no query, no environment
    cfg.compute.rows_per_shard, cfg.compute.lease_ttl_s = 2, 2
    # ...and expires 2 s after its last heartbeat: the re-run waits for that, then takes over.
    assert wait_for(lambda: _lease_expired(gen / "_lease.json"), 30)
    summary = run_labeling(cfg, **QUIET)
    reads = {r["path"].rsplit("/", 1)[1]: r["range"] for r in object_reads(server.requests())}
    assert reads == expected and len(object_reads(server.requests())) == len(expected)
    assert summary["complete"] and summary["blocks_written"] == total - len(written)
    for name, (_, meta) in written.items():  # finished shards were not rewritten
        assert part_metadata(str(gen / name))[1] == meta
    assert_rows_match(read_generation(gen), reference)


def _lease_expired(path: Path) -> bool:
    import time

    record = json.loads(path.read_text())
    return time.time() - record["heartbeat"] > record["ttl_s"]


def test_endpoint_flag_and_num_samples_read_only_what_is_needed(ray_local, server, tmp_path):
    from directsam.cli.label import main

    server.reset()
    argv = label_argv(
        "s3://data/sa1b/tars", tmp_path, "--s3-endpoint", server.endpoint,
        "--num-samples", "5", "--progress-interval", "1000", dataset="head",
    )  # fmt: skip
    assert main(argv) == 0
    rows = read_generation(tmp_path / "head" / "gen-scratch-tiny-0")
    assert sorted(rows) == [f"sa_{n}" for n in range(1, 6)]  # the first 5 in tar order
    parts = sorted(p.name for p in (tmp_path / "head" / "gen-scratch-tiny-0").glob("part-*"))
    assert parts == ["part-head-00000.parquet", "part-head-00001.parquet"]
    reads = object_reads(server.requests())
    assert [r["path"].rsplit("/", 1)[1] for r in reads] == [TARS[0]]  # 5 of its 8 images


def test_stage1_training_streams_tars_from_s3(ray_local, server, tmp_path):
    from directsam.config import load_config
    from directsam.training.config import PretrainConfig
    from directsam.training.trainer import run_training

    smoke = Path(__file__).resolve().parents[3] / "configs" / "smoke" / "pretrain.yaml"
    overrides = [
        "init=scratch:tiny",
        f"source.input={server.query('s3://data/sa1b/tars')}",
        "data.resolution=64",
        "data.decode_cpus=0.5",
        "data.shuffle_buffer=8",
        f"run.storage_path={tmp_path / 'runs'}",
        "run.num_workers=0",  # Train local mode: the same Ray Data stream, no worker start
        "optim.max_steps=3",
        "checkpoint.every_steps=3",
        "validation.every_steps=0",
        "tracking.enabled=false",
    ]
    server.reset()
    result = run_training(load_config(PretrainConfig, smoke, overrides=overrides))
    assert result.metrics["step"] == 3 and np.isfinite(result.metrics["loss"])
    reads = object_reads(server.requests())
    # The train split is every tar but the last (val = the last ceil(1%) of tars); each read
    # streams a whole tar from its first byte; no HEAD, no per-image request.
    assert {r["path"].rsplit("/", 1)[1] for r in reads} <= set(TARS[:-1]) and reads
    assert {r["range"] for r in reads} == {"bytes=0-"}
    assert all(r["method"] != "HEAD" for r in server.requests())
