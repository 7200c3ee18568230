"""fetch_links without Ray (threads / sequential) and the CLI, against the loopback server."""

from __future__ import annotations

import argparse
import hashlib
import json
import os

import pytest

from directsam.cli import fetch as fetch_cli
from directsam.fetch.links import read_links
from directsam.fetch.manifest import ManifestError
from directsam.fetch.runner import FetchOptions, fetch_links
from tests.fetch.conftest import read_manifest
from tests.fetch.server import Fault

FAST = {"use_ray": False, "backoff_s": 0.001, "max_backoff_s": 0.002, "timeout_s": 10.0}


def _fetch(sa1b, out, log=None, **options):
    opts = FetchOptions(**{**FAST, **options})
    lines: list[str] = [] if log is None else log
    return fetch_links(read_links(str(sa1b.links)), str(out), options=opts, log=lines.append)


def test_full_fetch_writes_files_and_manifest(sa1b, tmp_path):
    out = tmp_path / "out"
    lines: list[str] = []
    summary = _fetch(sa1b, out, log=lines, parallel=3)
    assert summary.counts == {"fetched": 3} and not summary.failed
    assert summary.bytes_downloaded == sum(len(t) for t in sa1b.shards.values())
    assert sorted(os.listdir(out)) == ["_MANIFEST.json", *sorted(sa1b.shards)]  # no .part left
    for name, tar in sa1b.shards.items():
        assert (out / name).read_bytes() == tar
    doc = read_manifest(out)
    assert doc["format"] == "directsam-fetch-manifest" and doc["version"] == 1
    rec = doc["files"]["sa_000001.tar"]
    assert rec["size"] == len(sa1b.shards["sa_000001.tar"])
    assert rec["sha256"] == hashlib.sha256(sa1b.shards["sa_000001.tar"]).hexdigest()
    assert rec["url"] == sa1b.server.url("sa_000001.tar")  # query (signed token) dropped
    assert rec["fetched_at"].endswith("Z")
    assert "secret" not in (out / "_MANIFEST.json").read_text()
    # One line per shard with the run's overall rate, then the summary.
    assert len(lines) == 4 and all(" | run " in ln and "/s" in ln for ln in lines[:3])
    assert lines[-1].startswith("fetch: 3 fetched, 0 already present, 0 failed")


def test_second_run_downloads_nothing(sa1b, tmp_path):
    out = tmp_path / "out"
    _fetch(sa1b, out)
    before = (out / "_MANIFEST.json").read_bytes()
    sa1b.server.reset_log()
    summary = _fetch(sa1b, out, parallel=2)
    assert summary.counts == {"present": 3} and summary.bytes_downloaded == 0
    assert sa1b.server.get_requests() == []  # not even a HEAD or Range probe
    assert (out / "_MANIFEST.json").read_bytes() == before  # untouched


def test_interrupted_run_resumes_with_range_and_identical_bytes(sa1b, tmp_path):
    out = tmp_path / "out"
    name = "sa_000002.tar"
    sa1b.server.faults[name] = Fault(cut_after=50_000)
    first = _fetch(sa1b, out, retries=0)
    assert [r.name for r in first.failed] == [name] and first.counts == {"fetched": 2, "failed": 1}
    assert (out / f"{name}.part").stat().st_size == 50_000
    assert name not in read_manifest(out)["files"] and not (out / name).exists()
    sa1b.server.reset_log()
    second = _fetch(sa1b, out)
    assert second.counts == {"present": 2, "fetched": 1}
    (req,) = sa1b.server.get_requests()
    assert req.path == name and req.range == "bytes=50000-" and req.status == 206
    assert (out / name).read_bytes() == sa1b.shards[name]
    assert second.results[2].resumed_from == 50_000
    assert second.bytes_downloaded == len(sa1b.shards[name]) - 50_000


def test_flaky_server_is_retried_within_a_run(sa1b, tmp_path):
    sa1b.server.faults["sa_000000.tar"] = Fault(fail_first=2, fail_status=500)
    sa1b.server.faults["sa_000001.tar"] = Fault(cut_after=1000, cut_times=2)
    summary = _fetch(sa1b, tmp_path / "out")
    assert summary.counts == {"fetched": 3}
    assert [r.attempts for r in summary.results] == [3, 3, 1]
    for name, tar in sa1b.shards.items():
        assert (tmp_path / "out" / name).read_bytes() == tar


def test_short_and_corrupt_files_are_detected_and_fetched_again(sa1b, tmp_path):
    out = tmp_path / "out"
    _fetch(sa1b, out)
    short, corrupt = out / "sa_000000.tar", out / "sa_000001.tar"
    short.write_bytes(short.read_bytes()[:-10])
    data = bytearray(corrupt.read_bytes())
    data[100] ^= 0xFF  # same size, one flipped byte
    corrupt.write_bytes(bytes(data))
    sa1b.server.reset_log()
    summary = _fetch(sa1b, out)  # default verify="size" catches the short file only
    assert [r.status for r in summary.results] == ["fetched", "present", "present"]
    assert (
        summary.results[0].reason.startswith("size ")
        and short.read_bytes() == sa1b.shards[short.name]
    )
    assert [r.range for r in sa1b.server.get_requests()] == [None]  # fresh, not resumed
    summary = _fetch(sa1b, out, verify="checksum")
    assert [r.status for r in summary.results] == ["present", "fetched", "present"]
    assert summary.results[1].reason == "sha256 of file != manifest"
    assert corrupt.read_bytes() == sa1b.shards[corrupt.name]


def test_links_checksum_mismatch_fails_the_file(server, tmp_path):
    server.files["a.bin"] = b"a" * 1000
    links = tmp_path / "links.tsv"
    links.write_text(f"name\turl\tsize\tmd5\na.bin\t{server.url('a.bin')}\t1000\t{'0' * 32}\n")
    opts = FetchOptions(**{**FAST, "retries": 1})
    summary = fetch_links(
        read_links(str(links)), str(tmp_path / "o"), options=opts, log=lambda s: None
    )
    assert "md5" in summary.failed[0].error and not (tmp_path / "o" / "a.bin").exists()
    good = hashlib.md5(b"a" * 1000).hexdigest()
    links.write_text(f"name\turl\tsize\tmd5\na.bin\t{server.url('a.bin')}\t1000\t{good}\n")
    summary = fetch_links(
        read_links(str(links)), str(tmp_path / "o"), options=opts, log=lambda s: None
    )
    assert read_manifest(tmp_path / "o")["files"]["a.bin"]["md5"] == good


def test_lost_manifest_is_rebuilt_without_downloading(sa1b, tmp_path):
    out = tmp_path / "out"
    _fetch(sa1b, out)
    (out / "_MANIFEST.json").unlink()  # e.g. killed between rename and manifest write
    sa1b.server.reset_log()
    summary = _fetch(sa1b, out)
    assert summary.counts == {"fetched": 3} and summary.bytes_downloaded == 0
    assert {r.status for r in sa1b.server.get_requests()} == {416}  # Range probes only
    assert len(read_manifest(out)["files"]) == 3
    (out / "_MANIFEST.json").write_text("{not json")
    with pytest.raises(ManifestError, match="unreadable fetch manifest"):
        _fetch(sa1b, out)


def test_extract_layout_and_resume(sa1b, tmp_path):
    out = tmp_path / "out"
    summary = _fetch(sa1b, out, extract=True)
    assert [r.extract for r in summary.results] == ["extracted"] * 3
    members = sa1b.members["sa_000000.tar"]
    assert (out / "sa_000000" / "sa_1.jpg").read_bytes() == members["sa_1.jpg"]
    assert sorted(os.listdir(out / "sa_000000")) == sorted([*members, "_EXTRACTED.json"])
    summary = _fetch(sa1b, out, extract=True, extract_root=str(tmp_path / "folders"))
    assert [r.extract for r in summary.results] == ["extracted"] * 3
    summary = _fetch(sa1b, out, extract=True)
    assert [(r.status, r.extract) for r in summary.results] == [("present", "already")] * 3


def test_remote_destination_through_pyarrow_filesystem(sa1b, tmp_path):
    pafs = pytest.importorskip("pyarrow.fs")
    memory = pytest.importorskip("fsspec.implementations.memory")
    mem = memory.MemoryFileSystem()
    root = f"bucket-{tmp_path.name}/sa1b"
    fs = pafs.PyFileSystem(pafs.FSSpecHandler(mem))
    staging = tmp_path / "staging"
    sa1b.server.faults["sa_000001.tar"] = Fault(cut_after=7000)
    try:
        opts = FetchOptions(**{**FAST, "staging": str(staging), "extract": True})
        entries = read_links(str(sa1b.links))
        summary = fetch_links(entries, root, options=opts, filesystem=fs, log=lambda s: None)
        assert summary.counts == {"fetched": 3} and summary.results[1].attempts == 2
        for name, tar in sa1b.shards.items():
            with fs.open_input_stream(f"{root}/{name}", compression=None) as f:
                assert f.read() == tar
        assert os.listdir(staging) == []  # parts uploaded then removed
        with fs.open_input_stream(f"{root}/sa_000002/sa_5.jpg") as f:
            assert f.read() == sa1b.members["sa_000002.tar"]["sa_5.jpg"]
        with fs.open_input_stream(f"{root}/_MANIFEST.json") as f:
            assert set(json.loads(f.read())["files"]) == set(sa1b.shards)
        sa1b.server.reset_log()
        again = fetch_links(entries, root, options=opts, filesystem=fs, log=lambda s: None)
        assert again.counts == {"present": 3} and sa1b.server.get_requests() == []
        assert [r.extract for r in again.results] == ["already"] * 3
    finally:
        mem.rm(f"bucket-{tmp_path.name}", recursive=True)


def _cli(argv):
    parser = argparse.ArgumentParser()
    fetch_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_fetch_sa1b_and_generic(sa1b, tmp_path, capsys):
    out = tmp_path / "cli"
    code = _cli(
        ["fetch-sa1b", "--links", str(sa1b.links), "--output", str(out), "--shards", "0,2",
         "--no-ray", "--parallel", "2", "--backoff", "0.001"]
    )  # fmt: skip
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["fetched"] == 2 and result["failed"] == {} and result["bytes_downloaded"] > 0
    assert sorted(read_manifest(out)["files"]) == ["sa_000000.tar", "sa_000002.tar"]
    sa1b.server.faults["sa_000001.tar"] = Fault(fail_first=10, fail_status=503)
    code = _cli(
        ["fetch", "--links", str(sa1b.links), "--output", str(out), "--select", "sa_*.tar",
         "--no-ray", "--retries", "1", "--backoff", "0.001"]
    )  # fmt: skip
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 1 and result["present"] == 2 and "HTTP 503" in result["failed"]["sa_000001.tar"]


def test_cli_rejects_bad_flags(sa1b, tmp_path):
    from directsam.config import ConfigError

    with pytest.raises(ConfigError, match="--parallel must be >= 1"):
        _cli(["fetch", "--links", str(sa1b.links), "--output", str(tmp_path), "--parallel", "0"])
    with pytest.raises(ConfigError, match="--shards"):
        _cli(["fetch-sa1b", "--links", str(sa1b.links), "--output", str(tmp_path), "--shards", "7"])


def test_md5_added_to_links_later_is_checked_once_and_recorded(server, tmp_path):
    data = b"b" * 5000
    server.files["b.bin"] = data
    links, out = tmp_path / "links.tsv", tmp_path / "o"
    opts = FetchOptions(**{**FAST, "retries": 0})

    def run(md5_column: str | None):
        header, extra = (
            ("name\turl", "") if md5_column is None else ("name\turl\tmd5", f"\t{md5_column}")
        )
        links.write_text(f"{header}\nb.bin\t{server.url('b.bin')}{extra}\n")
        return fetch_links(read_links(str(links)), str(out), options=opts, log=lambda s: None)

    run(None)
    assert read_manifest(out)["files"]["b.bin"]["md5"] is None
    server.reset_log()
    good = hashlib.md5(data).hexdigest()
    assert run(good).counts == {"present": 1} and server.get_requests() == []
    assert read_manifest(out)["files"]["b.bin"]["md5"] == good
    bad = run("f" * 32)  # disagrees with the record: re-fetched, then fails verification
    assert bad.failed[0].reason == "manifest md5 differs from links file"
    assert "md5" in bad.failed[0].error
    assert read_manifest(out)["files"] == {} and not (out / "b.bin").exists()
