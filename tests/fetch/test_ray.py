"""fetch_links as Ray tasks (one shared local cluster for the module; kept to one test)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from directsam.fetch.links import read_links
from directsam.fetch.runner import FetchOptions, fetch_links
from tests.fetch.conftest import read_manifest
from tests.fetch.server import Fault

pytestmark = pytest.mark.ray


def test_ray_tasks_fetch_resume_extract_then_nothing(ray_local, sa1b, tmp_path):
    out = tmp_path / "out"
    entries = read_links(str(sa1b.links))
    sa1b.server.faults["sa_000001.tar"] = Fault(cut_after=20_000)  # retried inside the task
    sa1b.server.faults["sa_000002.tar"] = Fault(fail_first=1, fail_status=503)
    opts = FetchOptions(parallel=2, backoff_s=0.01, max_backoff_s=0.02, extract=True)
    lines: list[str] = []
    summary = fetch_links(entries, str(out), options=opts, log=lines.append)
    assert summary.counts == {"fetched": 3} and not summary.failed
    assert [r.attempts for r in summary.results] == [1, 2, 2]
    for name, tar in sa1b.shards.items():
        assert (out / name).read_bytes() == tar
    ranges = [r.range for r in sa1b.server.get_requests("sa_000001.tar")]
    assert ranges == [None, "bytes=20000-"]
    assert (out / "sa_000001" / "sa_3.jpg").read_bytes() == sa1b.members["sa_000001.tar"][
        "sa_3.jpg"
    ]
    assert set(read_manifest(out)["files"]) == set(sa1b.shards)
    assert len(lines) == 4 and "[3/3]" in "".join(lines)

    sa1b.server.reset_log()
    again = fetch_links(entries, str(out), options=opts, log=lambda s: None)
    assert again.counts == {"present": 3} and again.bytes_downloaded == 0
    assert sa1b.server.get_requests() == []
    assert [r.extract for r in again.results] == ["already"] * 3


def test_ray_job_smoke_test(ray_local, capsys):
    path = Path(__file__).resolve().parents[2] / "ray_jobs" / "fetch_sa1b.py"
    spec = importlib.util.spec_from_file_location("fetch_sa1b_job", path)
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    assert job.main(["--smoke-test", "--parallel", "2"]) == 0
    assert "extracted layout present: True" in capsys.readouterr().out
