"""download_to_part against a real loopback HTTP server: resume, retries, size/checksum checks."""

from __future__ import annotations

import hashlib
import random

import pytest

from directsam.fetch.download import FetchError, RetryPolicy, download_to_part
from tests.fetch.server import Fault

DATA = random.Random(0).randbytes(300_000)
SHA = hashlib.sha256(DATA).hexdigest()
MD5 = hashlib.md5(DATA).hexdigest()


class Sleeps(list):
    """Records requested back-off delays instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def _get(server, part, **kwargs):
    kwargs.setdefault("sleep", Sleeps())
    kwargs.setdefault("rng", random.Random(1))
    kwargs.setdefault("chunk_size", 16_384)
    return download_to_part(server.url("f.bin", "sig=secret"), part, **kwargs)


def test_full_download(server, tmp_path):
    server.files["f.bin"] = DATA
    part = tmp_path / "f.bin.part"
    got = _get(server, part)
    assert part.read_bytes() == DATA
    assert (got.size, got.sha256, got.md5) == (len(DATA), SHA, None)
    assert (got.bytes_downloaded, got.resumed_from, got.attempts, got.requests) == (
        len(DATA),
        0,
        1,
        1,
    )
    (req,) = server.get_requests()
    assert req.range is None and req.status == 200


def test_connection_cut_mid_file_is_resumed_with_a_range_request(server, tmp_path):
    server.files["f.bin"] = DATA
    server.faults["f.bin"] = Fault(cut_after=100_000)
    sleeps = Sleeps()
    got = _get(server, tmp_path / "f.part", sleep=sleeps)
    assert (tmp_path / "f.part").read_bytes() == DATA
    first, second = server.get_requests()
    assert (first.status, first.body_bytes, first.range) == (200, 100_000, None)
    assert (second.status, second.range) == (206, "bytes=100000-")
    assert second.body_bytes == len(DATA) - 100_000
    # Nothing fetched twice: the network total equals the file size.
    assert got.bytes_downloaded == len(DATA) and got.attempts == 2 and got.sha256 == SHA
    assert len(sleeps) == 1


def test_interrupted_call_then_a_later_call_resumes_the_part(server, tmp_path):
    server.files["f.bin"] = DATA
    server.faults["f.bin"] = Fault(cut_after=123_457)
    part = tmp_path / "f.part"
    with pytest.raises(FetchError, match="giving up after 1 attempts"):
        _get(server, part, policy=RetryPolicy(retries=0))
    assert part.read_bytes() == DATA[:123_457]  # kept for the next run
    server.reset_log()
    got = _get(server, part, sha256=SHA)
    assert part.read_bytes() == DATA
    (req,) = server.get_requests()
    assert (req.range, req.status, req.body_bytes) == ("bytes=123457-", 206, len(DATA) - 123_457)
    assert (got.resumed_from, got.bytes_downloaded) == (123_457, len(DATA) - 123_457)


def test_server_errors_are_retried_with_exponential_backoff_and_jitter(server, tmp_path):
    server.files["f.bin"] = DATA
    server.faults["f.bin"] = Fault(fail_first=3, fail_status=503)
    sleeps = Sleeps()
    policy = RetryPolicy(retries=5, backoff_s=2.0, max_backoff_s=5.0)
    got = _get(server, tmp_path / "f.part", policy=policy, sleep=sleeps)
    assert got.attempts == 4 and (tmp_path / "f.part").read_bytes() == DATA
    assert [r.status for r in server.get_requests()] == [503, 503, 503, 200]
    # attempt k waits min(5, 2 * 2**k) * U(0.5, 1): 2, 4, then capped at 5.
    for delay, base in zip(sleeps, (2.0, 4.0, 5.0), strict=True):
        assert 0.5 * base <= delay <= base
    assert len(set(sleeps)) == 3


def test_retry_after_header_is_honoured(server, tmp_path):
    server.files["f.bin"] = DATA
    server.faults["f.bin"] = Fault(fail_first=1, fail_status=429, retry_after="7")
    sleeps = Sleeps()
    _get(server, tmp_path / "f.part", sleep=sleeps)
    assert sleeps == [7.0]


def test_client_errors_fail_at_once_and_retries_run_out(server, tmp_path):
    sleeps = Sleeps()
    with pytest.raises(FetchError, match="HTTP 404") as err:
        _get(server, tmp_path / "f.part", sleep=sleeps)
    assert sleeps == [] and len(server.get_requests()) == 1
    assert "secret" not in str(err.value)  # signed query strings never reach messages
    server.files["f.bin"] = DATA
    server.faults["f.bin"] = Fault(fail_first=10, fail_status=500)
    with pytest.raises(FetchError, match="giving up after 3 attempts.*HTTP 500"):
        _get(server, tmp_path / "f.part", policy=RetryPolicy(retries=2))


def test_short_body_detected_by_content_length_without_links_size(server, tmp_path):
    server.files["f.bin"] = DATA
    server.faults["f.bin"] = Fault(cut_after=10, cut_times=3)
    got = _get(server, tmp_path / "f.part")
    assert (tmp_path / "f.part").read_bytes() == DATA and got.attempts == 4
    assert [r.range for r in server.get_requests()] == [None, "bytes=10-", "bytes=20-", "bytes=30-"]


def test_wrong_size_on_the_server_is_an_error_against_the_links_size(server, tmp_path):
    server.files["f.bin"] = DATA
    server.faults["f.bin"] = Fault(body=DATA[:-1000])  # consistent headers, truncated object
    with pytest.raises(
        FetchError, match=f"server reports {len(DATA) - 1000} bytes, links file says {len(DATA)}"
    ):
        _get(server, tmp_path / "f.part", expected_size=len(DATA), policy=RetryPolicy(retries=1))


def test_checksum_mismatch_discards_the_part(server, tmp_path):
    server.files["f.bin"] = DATA
    part = tmp_path / "f.part"
    with pytest.raises(FetchError, match="sha256 .* != expected"):
        _get(server, part, sha256="0" * 64, policy=RetryPolicy(retries=1))
    assert not part.exists()
    assert len(server.get_requests()) == 2  # re-fetched once before giving up
    got = _get(server, part, md5=MD5, sha256=SHA)
    assert got.md5 == MD5 and part.read_bytes() == DATA


def test_corrupt_part_is_detected_by_checksum_and_fetched_again(server, tmp_path):
    server.files["f.bin"] = DATA
    part = tmp_path / "f.part"
    part.write_bytes(b"\xff" * 1000 + DATA[1000:])  # full size, wrong bytes
    got = _get(server, part, expected_size=len(DATA), sha256=SHA)
    assert part.read_bytes() == DATA and got.attempts == 2
    # First attempt needed no request (size already complete), the re-fetch started fresh.
    (req,) = server.get_requests()
    assert req.range is None and req.status == 200


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    server.files["f.bin"] = DATA
    server.faults["f.bin"] = Fault(ignore_range=True)
    part = tmp_path / "f.part"
    part.write_bytes(DATA[:5000])
    got = _get(server, part, sha256=SHA)
    assert part.read_bytes() == DATA and got.bytes_downloaded == len(DATA)
    (req,) = server.get_requests()
    assert (req.range, req.status) == ("bytes=5000-", 200)


def test_complete_part_answered_with_416_downloads_nothing(server, tmp_path):
    server.files["f.bin"] = DATA
    part = tmp_path / "f.part"
    part.write_bytes(DATA)
    got = _get(server, part)
    assert (got.bytes_downloaded, got.resumed_from, got.sha256) == (0, len(DATA), SHA)
    (req,) = server.get_requests()
    assert (req.status, req.body_bytes) == (416, 0)
    server.reset_log()
    _get(server, part, expected_size=len(DATA))  # size known: no request at all
    assert server.get_requests() == []


def test_part_longer_than_the_file_is_discarded(server, tmp_path):
    server.files["f.bin"] = DATA
    part = tmp_path / "f.part"
    part.write_bytes(DATA + b"junk")
    got = _get(server, part, expected_size=len(DATA))
    assert part.read_bytes() == DATA and got.resumed_from == len(DATA) + 4


def test_empty_file(server, tmp_path):
    server.files["f.bin"] = b""
    got = _get(server, tmp_path / "f.part")
    assert got.size == 0 and (tmp_path / "f.part").read_bytes() == b""
