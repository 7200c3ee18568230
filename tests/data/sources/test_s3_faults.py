"""Object-store faults and concurrent runs, on the S3-protocol server behind a fault proxy.

* Transient faults (a connection cut mid-tar, a stalled body hitting the read timeout, a 503
  on every 5th request) are retried with backoff; the run completes with the rows of a clean
  run, and the cut tar is re-requested from the byte where its body stopped.
* A tar that stays unreadable past a byte gives the rows read before it plus one failed row
  naming the error; the run is incomplete, and a re-run reads exactly the rest of that tar.
* Two runs on one output: the second refuses while the first holds the lease (naming it); the
  first finishes with every row exactly once.
"""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

import pytest

from directsam.labeling.lease import LeaseHeldError
from directsam.labeling.pipeline import run_labeling
from tests.data.sources.faultproxy import FaultProxy, Rule
from tests.data.sources.s3cases import (
    NUM_IMAGES,
    QUIET,
    TARS,
    assert_rows_match,
    label_subprocess_args,
    s3_config,
)
from tests.data.sources.s3server import object_reads
from tests.labeling.helpers import read_generation
from tests.reliability.helpers import wait_for

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.usefixtures("aws_env")]


@pytest.fixture
def proxy(server):
    p = FaultProxy(server.port)
    yield p
    p.close()


def _member_offsets(server, tar: str, member: str) -> tuple[int, int]:
    """(header offset, data offset) of a member of one of the uploaded tars."""
    with tarfile.open(server.root / "tars" / tar) as tf:
        info = tf.getmember(member)
        return info.offset, info.offset_data


def test_transient_faults_are_retried_to_the_same_rows(
    ray_local, server, reference, proxy, tmp_path
):
    _, cut = _member_offsets(server, TARS[0], "sa_3.json")
    _, stall = _member_offsets(server, TARS[1], "sa_12.jpg")
    proxy.every_503 = 5
    proxy.rules = [Rule(TARS[0], readable_to=cut + 100), Rule(TARS[1], stall_at=stall, stall_s=4)]
    cfg = s3_config(proxy.query("s3://data/sa1b/tars"), tmp_path)
    cfg.object_store.timeout_s = 1.5  # the stall outlasts it
    server.reset()
    summary = run_labeling(cfg, **QUIET)
    assert summary["complete"] and summary["units_to_retry"] == []
    assert_rows_match(read_generation(summary["generation"]), reference)
    assert proxy.counts["503"] >= 1 and [r.fired for r in proxy.rules] == [1, 1]
    reads = object_reads(server.requests())
    ranges = {t: [r["range"] for r in reads if r["path"].endswith(t)] for t in TARS}
    # The cut body resumed at the byte where it stopped (a ranged GET, not from the start).
    assert ranges[TARS[0]] == ["bytes=0-", f"bytes={cut + 100}-"]
    assert len(ranges[TARS[1]]) == 2 and ranges[TARS[2]] == ["bytes=0-"]


def test_unreadable_rest_of_a_tar_is_a_failed_row_and_a_rerun_reads_exactly_it(
    ray_local, server, reference, proxy, tmp_path
):
    group, data = _member_offsets(server, TARS[1], "sa_14.jpg")  # image 6 of the tar
    proxy.rules = [Rule(TARS[1], readable_to=data + 50, times=None)]  # dies there, for good
    cfg = s3_config(proxy.query("s3://data/sa1b/tars"), tmp_path)
    cfg.object_store.tries = 3
    summary = run_labeling(cfg, **QUIET)
    gen = Path(summary["generation"])
    rows = read_generation(gen)
    placeholder = f"sa_000001@{group}"
    assert not summary["complete"] and summary["units_to_retry"] == ["sa_000001"]
    assert not (gen / "_SUCCESS.json").exists()
    unread = ("sa_14", "sa_15", "sa_16")  # from the failed group to the end of the tar
    assert sorted(rows) == sorted([k for k in reference if k not in unread] + [placeholder])
    error = rows[placeholder]["error"]
    assert error.startswith(f"read_failed: s3://data/sa1b/tars/{TARS[1]}: read failed from ")
    assert f"byte {group}" in error and "3 tries" in error
    assert rows[placeholder]["pseudo_boundary"] is None

    # The store is healthy again: the re-run reads only the rest of that tar, once.
    proxy.rules = []
    server.reset()
    again = run_labeling(cfg, **QUIET)
    reads = object_reads(server.requests())
    assert [(r["path"].rsplit("/", 1)[1], r["range"]) for r in reads] == [
        (TARS[1], f"bytes={group}-")
    ]
    assert again["complete"] and again["blocks_written"] == 1  # chunk 1 of that tar, replaced
    assert_rows_match(read_generation(gen), reference)


def test_a_second_run_on_the_same_output_is_refused_while_the_first_runs(
    ray_local, server, reference, tmp_path
):
    out = tmp_path / "out"
    gen = out / "sa" / "gen-scratch-tiny-0"
    cmd, env = label_subprocess_args(server.query("s3://data/sa1b/tars"), out)
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert wait_for(lambda: (gen / "_lease.json").exists(), 240), "no lease appeared"
        with pytest.raises(LeaseHeldError) as refused:
            run_labeling(s3_config(server.query("s3://data/sa1b/tars"), out), **QUIET)
        message = str(refused.value)
        assert f":{first.pid}:" in message and "is being written by another labeling run" in message
        assert "Wait for it to finish, or use another --output" in message
        _, err = first.communicate(timeout=600)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err.decode()[-2000:]
    rows = read_generation(gen)  # asserts every id exactly once
    assert len(rows) == NUM_IMAGES and (gen / "_SUCCESS.json").exists()
    assert not (gen / "_lease.json").exists()  # released at the end
    assert_rows_match(rows, reference)
    again = run_labeling(s3_config(server.query("s3://data/sa1b/tars"), out), **QUIET)
    assert again["blocks_written"] == 0 and again["complete"]
