"""One URL -> one verified local file: streaming HTTP into ``<name>.part`` with Range resume.

The part file is the unit of resume. Each attempt asks for ``Range: bytes=<part size>-`` and
appends; a server that ignores the range (200) restarts the file, a 416 whose total equals the
part size means "already complete". Transient failures (connection resets, timeouts, short
bodies, 408/425/429/5xx) are retried with exponential back-off and jitter, keeping the bytes
already on disk; a checksum or size mismatch discards the part and starts again. Only the
verified part is renamed (atomically) to the final name, so a final name always means "whole".

Memory use is one ``chunk_size`` buffer; the SHA-256 (and MD5 when the links file gives one) is
computed while streaming, and on resume by re-reading only the bytes already on disk once.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import random
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from directsam.fetch.links import redact_url

USER_AGENT = "directsam-fetch/0.1"
RETRY_STATUS = frozenset({408, 425, 429})  # plus every 5xx
_CONTENT_RANGE = re.compile(r"^bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)$")

ProgressFn = Callable[[int, "int | None"], None]


class FetchError(RuntimeError):
    """A file could not be fetched or verified (after retries where retrying makes sense)."""


class _Retryable(Exception):
    """A failure worth another attempt; ``restart`` discards the part file first."""

    def __init__(self, reason: str, restart: bool = False, retry_after: float | None = None):
        super().__init__(reason)
        self.restart = restart
        self.retry_after = retry_after


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential back-off with jitter: attempt k waits ``min(max, base * 2**k) * U(0.5, 1)``.

    The jitter keeps hundreds of tasks that failed together (a CDN hiccup) from retrying in
    lockstep; the 0.5 floor keeps the back-off meaningful.
    """

    retries: int = 5
    """Extra attempts after the first (so ``retries + 1`` requests at most per file)."""
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 0)."""
        base = min(self.max_backoff_s, self.backoff_s * (2.0**attempt))
        return base * (0.5 + 0.5 * rng.random())


@dataclass(frozen=True)
class Downloaded:
    """Outcome of :func:`download_to_part` (the part file is complete and verified)."""

    size: int
    sha256: str
    md5: str | None
    bytes_downloaded: int
    """Body bytes received over the network by this call (0 when the part was already whole)."""
    resumed_from: int
    """Size of the part file found at the start (0 = fresh download)."""
    attempts: int
    requests: int


class _Hashes:
    """Running digests of the part file's first ``offset`` bytes."""

    def __init__(self, want_md5: bool):
        self.want_md5 = want_md5
        self.reset()

    def reset(self) -> None:
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5(usedforsecurity=False) if self.want_md5 else None
        self.offset = 0

    def update(self, data: bytes | memoryview) -> None:
        self.sha256.update(data)
        if self.md5 is not None:
            self.md5.update(data)
        self.offset += len(data)

    def catch_up(self, path: Path, chunk_size: int) -> None:
        """Hash bytes of ``path`` past ``offset`` (bytes written before a failure, or an old part)."""
        size = path.stat().st_size if path.exists() else 0
        if size < self.offset:
            self.reset()
        if size == self.offset:
            return
        with open(path, "rb") as f:
            f.seek(self.offset)
            while chunk := f.read(chunk_size):
                self.update(chunk)


def download_to_part(
    url: str,
    part: str | os.PathLike[str],
    *,
    expected_size: int | None = None,
    md5: str | None = None,
    sha256: str | None = None,
    policy: RetryPolicy | None = None,
    timeout: float = 60.0,
    chunk_size: int = 1 << 20,
    progress: ProgressFn | None = None,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    name: str | None = None,
) -> Downloaded:
    """Download ``url`` into the part file ``part``, resuming whatever is already there.

    Args:
        url: http(s) address.
        part: local path of the partial file (created, appended to, or truncated as needed).
        expected_size: size from the links file; a server reporting another size is an error.
        md5, sha256: expected lower-case hex digests; checked once the part is whole.
        policy: retry counts and back-off (defaults: 5 retries, 1 s doubling to 60 s).
        timeout: socket timeout in seconds for connect and each read.
        chunk_size: bytes per read/write; the only buffer held in memory.
        progress: called as ``progress(bytes_in_part, total_or_None)`` after each chunk.
        sleep, rng: injectable for tests (no real waiting, seeded jitter).
        name: how to name the file in errors (default: the part's file name).

    Returns:
        :class:`Downloaded`; the part file then holds exactly the verified bytes.

    Raises:
        FetchError: a non-retryable HTTP status (403, 404, ...) or retries exhausted. The part
            file is kept after transient failures so a later call resumes it.
    """
    policy = policy or RetryPolicy()
    rng = rng or random.Random()
    part = Path(part)
    name = name or part.name
    part.parent.mkdir(parents=True, exist_ok=True)
    hashes = _Hashes(want_md5=md5 is not None)
    state = {"total": expected_size, "downloaded": 0, "requests": 0}
    resumed_from = part.stat().st_size if part.exists() else 0
    last: BaseException | None = None
    for attempt in range(policy.retries + 1):
        if attempt:
            assert last is not None
            wait = last.retry_after if isinstance(last, _Retryable) else None
            sleep(
                min(wait, policy.max_backoff_s)
                if wait is not None
                else policy.delay(attempt - 1, rng)
            )
        try:
            have = part.stat().st_size if part.exists() else 0
            total = state["total"]
            if total is not None and have > total:
                _truncate(part)  # longer than the file can be: not a prefix of it
                have = 0
            # Bytes a failed write left behind must be hashed before appending more.
            hashes.catch_up(part, chunk_size)
            if total is None or have < total:
                state["requests"] += 1
                _transfer(
                    url, part, have, state, expected_size, hashes, timeout, chunk_size, progress
                )
            hashes.catch_up(part, chunk_size)
            _verify(hashes, state["total"], md5, sha256)
            part.touch()  # a zero-byte file never got a write
            with open(part, "rb+") as f:
                os.fsync(f.fileno())  # durable before the caller's rename makes it "final"
            return Downloaded(
                size=hashes.offset,
                sha256=hashes.sha256.hexdigest(),
                md5=hashes.md5.hexdigest() if hashes.md5 is not None else None,
                bytes_downloaded=state["downloaded"],
                resumed_from=resumed_from,
                attempts=attempt + 1,
                requests=state["requests"],
            )
        except _Retryable as err:
            last = err
            if err.restart:
                _truncate(part)
                hashes.reset()
        except urllib.error.HTTPError as err:
            if err.code < 500 and err.code not in RETRY_STATUS:
                hint = (
                    " (signed links expire: get a fresh links file)"
                    if err.code in (403, 410)
                    else ""
                )
                raise FetchError(
                    f"{name}: HTTP {err.code} {err.reason} from {redact_url(url)}{hint}"
                ) from err
            retry_after = _retry_after(err.headers.get("Retry-After"))
            last = _Retryable(f"HTTP {err.code} {err.reason}", retry_after=retry_after)
        except (OSError, http.client.HTTPException) as err:
            # URLError (refused, DNS), resets, timeouts, RemoteDisconnected, IncompleteRead.
            last = err
    raise FetchError(
        f"{name}: giving up after {policy.retries + 1} attempts from {redact_url(url)}: "
        f"{type(last).__name__}: {last}"
    )


def _transfer(
    url: str,
    part: Path,
    have: int,
    state: dict,
    expected_size: int | None,
    hashes: _Hashes,
    timeout: float,
    chunk_size: int,
    progress: ProgressFn | None,
) -> None:
    """One request: append the missing tail of the file to ``part`` (or rewrite it on 200)."""
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code != 416 or not have:
            raise
        # Range not satisfiable: complete if the server's total equals what we hold.
        total = _parse_content_range(err.headers.get("Content-Range"))[2]
        err.close()
        if total is not None and total == have:
            _set_total(state, total, expected_size)
            return
        raise _Retryable(f"416 for bytes={have}- with total {total}", restart=True) from err
    with response:
        status = response.status
        length = _int_or_none(response.headers.get("Content-Length"))
        if status == 206:
            start, end, total = _parse_content_range(response.headers.get("Content-Range"))
            if start != have:
                raise _Retryable(f"206 starts at {start}, asked for {have}", restart=True)
            if end is not None and length is not None and length != end - start + 1:
                raise _Retryable(f"Content-Length {length} != Content-Range span {end - start + 1}")
            mode = "ab"
        elif status == 200:
            total, mode = length, "wb"  # server ignored the range (or there was none): start over
            if have:
                hashes.reset()
        else:
            raise _Retryable(f"unexpected HTTP status {status}")
        _set_total(state, total, expected_size)
        received = 0
        buffer = memoryview(bytearray(chunk_size))  # one reused buffer: no per-chunk allocation
        with _open_local(part, mode) as f:
            while n := response.readinto(buffer):
                chunk = buffer[:n]
                _write_local(f, chunk, part)
                hashes.update(chunk)
                received += n
                state["downloaded"] += n
                if progress is not None:
                    progress(hashes.offset, state["total"])
    # http.client returns b"" (no exception) when the peer closes early: check the length.
    if length is not None and received != length:
        raise _Retryable(f"connection closed after {received} of {length} body bytes")


def _set_total(state: dict, total: int | None, expected_size: int | None) -> None:
    """Record the server's file size; disagreement with the links file or an earlier reply fails."""
    if total is None:
        return
    if expected_size is not None and total != expected_size:
        raise _Retryable(f"server reports {total} bytes, links file says {expected_size}")
    if state["total"] is not None and state["total"] != total:
        # The object changed between attempts: the bytes we hold are from another version.
        state["total"] = total
        raise _Retryable(f"server size changed to {total} bytes", restart=True)
    state["total"] = total


def _verify(hashes: _Hashes, total: int | None, md5: str | None, sha256: str | None) -> None:
    if total is not None and hashes.offset != total:
        # Longer than announced is corrupt; shorter is resumed by the next attempt.
        raise _Retryable(
            f"part holds {hashes.offset} bytes, expected {total}", restart=hashes.offset > total
        )
    if sha256 is not None and hashes.sha256.hexdigest() != sha256:
        raise _Retryable(f"sha256 {hashes.sha256.hexdigest()} != expected {sha256}", restart=True)
    if md5 is not None and hashes.md5 is not None and hashes.md5.hexdigest() != md5:
        raise _Retryable(f"md5 {hashes.md5.hexdigest()} != expected {md5}", restart=True)


def _parse_content_range(value: str | None) -> tuple[int | None, int | None, int | None]:
    """``"bytes 10-99/100"`` -> (10, 99, 100); ``"bytes */100"`` -> (None, None, 100)."""
    m = _CONTENT_RANGE.match((value or "").strip())
    if not m:
        raise _Retryable(f"missing or malformed Content-Range {value!r}", restart=True)
    start, end, total = m.groups()
    return (
        int(start) if start is not None else None,
        int(end) if end is not None else None,
        int(total) if total not in (None, "*") else None,
    )


def _retry_after(value: str | None) -> float | None:
    return float(value) if value and value.strip().isdigit() else None


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value and value.strip().isdigit() else None


def _open_local(part: Path, mode: str):
    # Local disk errors (full, read-only, permissions) are not network weather: no retries.
    try:
        return open(part, mode)
    except OSError as err:
        raise FetchError(f"cannot write part file {part}: {err}") from err


def _write_local(f, chunk: memoryview, part: Path) -> None:
    try:
        f.write(chunk)
    except OSError as err:
        raise FetchError(f"cannot write part file {part}: {err}") from err


def _truncate(part: Path) -> None:
    part.unlink(missing_ok=True)
