"""Driver fault: SIGTERM the labeling job mid-run, then re-run it.

The job is the real entry point (``directsam label`` as a subprocess, with its own local Ray).
Once its first shard is on disk it gets SIGTERM. Right after, a reader of the output folder
sees only whole shards (temp files are hidden names that Parquet readers skip). The re-run
skips the finished blocks, removes temp files left behind and writes the rest; the final rows
equal a plain single-process reference: same ids, no duplicates, same labels.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from directsam.data.sample import make_sample
from directsam.data.sources.shards.layout import part_files
from tests.reliability.helpers import (
    CHECKPOINT,
    assert_rows_equal_reference,
    label_config,
    read_rows,
    reference_rows,
    wait_for,
)

pytestmark = pytest.mark.slow

NUM_IMAGES = 32
RESOLUTION = 384


def _label_cmd(sample: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "directsam.cli",
        "label",
        "--source",
        "sa1b",
        "--input",
        str(sample),
        "--dataset",
        "sa",
        "--output",
        str(out),
        "--checkpoint",
        CHECKPOINT,
        "--resolution",
        str(RESOLUTION),
        "--thickness",
        "3",
        "--device",
        "cpu",
        "--dtype",
        "fp32",
        "--batch-size",
        "4",
        "--rows-per-shard",
        "4",
        "--gpu-actors",
        "1",
        "--no-tracking",
        "--set",
        "compute.decode_batch_size=4",
    ]


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "RAY_ADDRESS": "",
        "RAY_AUTH_MODE": "disabled",
        "RAY_DATA_DISABLE_PROGRESS_BARS": "1",
    }


def _reap(pids: set[int]) -> None:
    """Kill what the killed driver left behind (its local Ray), by pid, only our own."""
    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=20)


def test_sigterm_mid_run_then_rerun_gives_the_uninterrupted_rows(tmp_path):
    sample = make_sample(
        tmp_path / "in",
        num_images=NUM_IMAGES,
        seed=5,
        kind="sa1b",
        height=48,
        width=64,
        images_per_tar=8,
    )
    out = tmp_path / "out"
    generation = out / "sa" / "gen-scratch-b0-0"
    log = (tmp_path / "first.log").open("w")
    proc = subprocess.Popen(_label_cmd(sample, out), env=_env(), stdout=log, stderr=log)
    descendants: set[int] = set()

    def first_shard():
        try:
            descendants.update(c.pid for c in psutil.Process(proc.pid).children(recursive=True))
        except psutil.NoSuchProcess:
            pass
        return part_files(str(generation)) if generation.is_dir() else None

    try:
        assert wait_for(first_shard, 240, 0.05), (tmp_path / "first.log").read_text()[-3000:]
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
        _reap(descendants)
    assert rc != 0  # it was stopped, not finished

    # What a reader sees right after the kill: whole shards only, no _SUCCESS marker.
    written = sorted(generation.glob("part-*.parquet"))
    assert 0 < len(written) < NUM_IMAGES // 4
    assert not (generation / "_SUCCESS.json").exists()
    visible = pads.dataset(str(generation), format="parquet").to_table()
    assert visible.num_rows == 4 * len(written)
    for part in written:
        assert pq.ParquetFile(part).metadata.num_rows == 4
    hidden = [p.name for p in generation.iterdir() if ".tmp-" in p.name]
    assert all(name.startswith(".") for name in hidden)
    # A temp file as a kill mid-write would leave it: readers skip it, the re-run removes it.
    planted = generation / ".part-000007.parquet.tmp-0123456789ab"
    planted.write_bytes(b"PAR1 half a shard")
    assert pads.dataset(str(generation), format="parquet").to_table().num_rows == visible.num_rows

    before = {p.name: p.stat().st_mtime_ns for p in written}
    rerun = subprocess.run(
        _label_cmd(sample, out), env=_env(), capture_output=True, text=True, timeout=300
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert not planted.exists()
    assert {p.name: p.stat().st_mtime_ns for p in written} == before  # finished blocks kept
    assert (generation / "_SUCCESS.json").exists()

    rows, seen = read_rows(generation)
    assert len(seen) == len(set(seen)) == NUM_IMAGES
    cfg = label_config(sample, out, RESOLUTION, dataset="sa")
    assert_rows_equal_reference(rows, reference_rows(cfg))
