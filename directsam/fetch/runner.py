"""Links -> files on a destination: one task per file (Ray or local threads), manifest by the driver.

:func:`fetch_one` is the whole per-file job (check, download with resume, publish, optionally
extract) and needs no Ray; :func:`fetch_links` runs it for every entry with at most
``parallel`` in flight, either as Ray tasks (``use_ray=True``; a cluster spreads them over its
nodes) or in a thread pool, and records each finished file in the manifest as it arrives, so an
interrupted run loses at most the files in flight (and those resume from their part files).

A local destination on a multi-node cluster would scatter files over the nodes' disks, so its
tasks are pinned to the driver's node unless ``shared_storage`` says the path is shared.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tarfile
import time
import zipfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

from directsam.config import ConfigError
from directsam.fetch.destination import Destination, UnsafePathError
from directsam.fetch.download import FetchError, RetryPolicy, download_to_part
from directsam.fetch.extract import UnsafeArchiveError, archive_stem, extract_archive
from directsam.fetch.links import MANIFEST_NAME, LinkEntry, redact_url
from directsam.fetch.manifest import FileRecord, Manifest, check_record, utc_now

LogFn = Callable[[str], None]


@dataclass(frozen=True)
class FetchOptions:
    """How to fetch; every field has a CLI flag of the same name (``--parallel`` ...)."""

    parallel: int = 4
    """Files in flight at once (Ray tasks or threads)."""
    retries: int = 5
    """Extra attempts per file after the first; each attempt resumes the part file."""
    backoff_s: float = 1.0
    """First retry waits about this long; doubles per attempt, with jitter."""
    max_backoff_s: float = 60.0
    timeout_s: float = 60.0
    """Socket timeout for connecting and for each read."""
    verify: str = "size"
    """How files already in the manifest are checked: "size" (stat) or "checksum" (re-hash)."""
    extract: bool = False
    """Also write the extracted layout root/<stem>/... (resumable)."""
    extract_root: str | None = None
    """Where extracted folders go (default: the output itself)."""
    staging: str | None = None
    """Local folder for part files when the output is remote (default: system temp dir)."""
    use_ray: bool = True
    task_cpus: float = 0.25
    """CPUs reserved per Ray download task (downloads are I/O bound; hashing needs a little)."""
    shared_storage: bool = False
    """A local output path is shared by every node (NFS), so tasks may run anywhere."""
    chunk_size: int = 1 << 20
    progress_interval_s: float = 30.0
    """Seconds between in-flight progress lines per file."""

    def validate(self) -> None:
        problems = []
        if self.parallel < 1:
            problems.append(f"--parallel must be >= 1, got {self.parallel}")
        if self.retries < 0:
            problems.append(f"--retries must be >= 0, got {self.retries}")
        if self.timeout_s <= 0:
            problems.append(f"--timeout must be > 0, got {self.timeout_s}")
        if self.verify not in ("size", "checksum"):
            problems.append(f"--verify must be 'size' or 'checksum', got {self.verify!r}")
        if self.task_cpus <= 0:
            problems.append(f"--task-cpus must be > 0, got {self.task_cpus}")
        if problems:
            raise ConfigError("; ".join(problems))


@dataclass(frozen=True)
class FileResult:
    """Outcome for one links entry. ``status``: "present" | "fetched" | "failed"."""

    name: str
    status: str
    url: str = ""
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None
    reason: str | None = None  # why it was (re)fetched
    bytes_downloaded: int = 0
    resumed_from: int = 0
    attempts: int = 0
    seconds: float = 0.0
    error: str | None = None
    extract: str | None = None  # "extracted" | "already" | "not an archive" | "failed"

    @property
    def ok(self) -> bool:
        return self.status != "failed" and self.extract != "failed"


@dataclass
class FetchSummary:
    """All results of one :func:`fetch_links` call, in links order."""

    results: list[FileResult]
    seconds: float
    manifest: str = ""
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def bytes_downloaded(self) -> int:
        return sum(r.bytes_downloaded for r in self.results)

    @property
    def rate(self) -> float:
        """Bytes per second over the whole run (network bytes / wall time)."""
        return self.bytes_downloaded / self.seconds if self.seconds > 0 else 0.0

    @property
    def failed(self) -> list[FileResult]:
        return [r for r in self.results if not r.ok]


def fetch_one(
    entry: LinkEntry, record: FileRecord | None, dest: Destination, options: FetchOptions
) -> FileResult:
    """Make ``dest/<entry.name>`` whole and verified (and extracted when asked); never raises
    for per-file problems: they come back as ``status="failed"`` with the error text."""
    start = time.perf_counter()
    url = redact_url(entry.url)
    reason: str | None = None
    try:
        reason = check_record(entry, record, dest, options.verify, options.chunk_size)
        if reason is None:
            assert record is not None
            # check_record verified entry.md5 against the file when the record had none.
            md5 = record.md5 or entry.md5
            result = FileResult(entry.name, "present", url, record.size, record.sha256, md5)
            result = _maybe_extract(result, entry, dest, options, part=None)
            return _with_seconds(result, time.perf_counter() - start)
        part = dest.part_path(entry.name)
        if dest.size(entry.name) is not None:
            if record is None and dest.is_local:
                # A final file without a record: the run died between rename and manifest
                # write. Re-check it as a part (a Range request; no body when it is whole).
                os.replace(dest.local_path(entry.name), part)
            else:
                dest.remove(entry.name)  # recorded but inconsistent: trust none of its bytes
                part.unlink(missing_ok=True)
        got = download_to_part(
            entry.url,
            part,
            expected_size=entry.size,
            md5=entry.md5,
            sha256=entry.sha256,
            policy=RetryPolicy(options.retries, options.backoff_s, options.max_backoff_s),
            timeout=options.timeout_s,
            chunk_size=options.chunk_size,
            progress=_ProgressPrinter(entry.name, options.progress_interval_s),
            name=entry.name,
        )
        result = FileResult(
            entry.name, "fetched", url, got.size, got.sha256, got.md5, reason,
            got.bytes_downloaded, got.resumed_from, got.attempts,
        )  # fmt: skip
        if not dest.is_local:
            # Extract from the local part before uploading: no read-back from the object store.
            result = _maybe_extract(result, entry, dest, options, part=part)
            dest.commit_part(entry.name, part, options.chunk_size)
        else:
            dest.commit_part(entry.name, part, options.chunk_size)
            result = _maybe_extract(result, entry, dest, options, part=None)
    except (FetchError, OSError, ValueError) as err:
        result = FileResult(entry.name, "failed", url, reason=reason, error=str(err))
    return _with_seconds(result, time.perf_counter() - start)


def fetch_links(
    entries: Sequence[LinkEntry],
    output: str,
    *,
    options: FetchOptions | None = None,
    filesystem: object = None,
    log: LogFn | None = None,
) -> FetchSummary:
    """Fetch every entry into ``output`` (a directory or a pyarrow-fs URI such as ``s3://b/p``).

    Args:
        entries: the selected links (see :mod:`directsam.fetch.links`).
        output: destination root; created when local.
        options: see :class:`FetchOptions`.
        filesystem: an explicit ``pyarrow.fs.FileSystem`` for ``output`` (then a path in it).
        log: receives one line per finished file and a summary (default: print to stderr).

    Returns:
        :class:`FetchSummary`; the manifest ``output/_MANIFEST.json`` lists every whole file.
    """
    options = options or FetchOptions()
    options.validate()
    log = log or _stderr
    dest = Destination(output, filesystem, options.staging)
    if dest.is_local:
        dest.local_root.mkdir(parents=True, exist_ok=True)
    manifest = Manifest.load(dest)
    jobs = [(e, manifest.get(e.name)) for e in entries]
    progress = _RunProgress(len(jobs), log)
    results: dict[str, FileResult] = {}

    def on_result(result: FileResult) -> None:
        results[result.name] = result
        if result.status in ("present", "fetched") and result.sha256 is not None:
            record = manifest.get(result.name)
            if result.status == "fetched" or record is None:
                record = FileRecord(
                    result.name, result.size or 0, result.sha256, result.url, utc_now(), result.md5
                )
            elif result.md5 is not None and record.md5 is None:
                record = dataclasses.replace(record, md5=result.md5)  # verified against links
            if manifest.put(record):
                manifest.save(dest)  # after every file: a crash loses only files in flight
        elif result.status == "failed" and manifest.remove(result.name):
            manifest.save(dest)  # the manifest only lists files known to be whole
        progress.line(result)

    (_run_ray if options.use_ray else _run_threads)(jobs, dest, options, on_result)
    ordered = [results[e.name] for e in entries if e.name in results]
    summary = FetchSummary(ordered, progress.elapsed(), dest.describe(MANIFEST_NAME))
    for r in ordered:
        summary.counts[r.status] = summary.counts.get(r.status, 0) + 1
    log(
        f"fetch: {summary.counts.get('fetched', 0)} fetched, {summary.counts.get('present', 0)} "
        f"already present, {len(summary.failed)} failed; {format_bytes(summary.bytes_downloaded)} "
        f"in {summary.seconds:.1f} s ({format_bytes(summary.rate)}/s); manifest {summary.manifest}"
    )
    return summary


def format_bytes(n: float) -> str:
    """Decimal units, as archive sizes are quoted: ``10.61 GB``."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


# ----------------------------------------------------------------------------- execution


def _run_threads(jobs, dest: Destination, options: FetchOptions, on_result) -> None:
    if options.parallel == 1:
        for entry, record in jobs:
            on_result(fetch_one(entry, record, dest, options))
        return
    with ThreadPoolExecutor(max_workers=options.parallel) as pool:
        futures = [pool.submit(fetch_one, e, r, dest, options) for e, r in jobs]
        for fut in as_completed(futures):
            on_result(fut.result())


def _run_ray(jobs, dest: Destination, options: FetchOptions, on_result) -> None:
    import ray  # Ray-specific: one task per file, at most `parallel` in flight

    remote_args: dict = {"num_cpus": options.task_cpus, "max_retries": 2}
    if dest.is_local and not options.shared_storage:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        node = ray.get_runtime_context().get_node_id()
        remote_args["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node, soft=False)
    task = ray.remote(**remote_args)(fetch_one)
    queue = list(jobs)
    queue.reverse()
    pending: dict = {}
    while queue or pending:
        while queue and len(pending) < options.parallel:
            entry, record = queue.pop()
            pending[task.remote(entry, record, dest, options)] = entry
        done, _ = ray.wait(list(pending), num_returns=1)
        entry = pending.pop(done[0])
        try:
            result = ray.get(done[0])
        except Exception as err:  # worker died past max_retries: report, keep going
            result = FileResult(entry.name, "failed", redact_url(entry.url), error=f"task: {err}")
        on_result(result)


def _maybe_extract(result, entry: LinkEntry, dest: Destination, options, part) -> FileResult:
    if not options.extract:
        return result
    if archive_stem(entry.name) is None:
        return _replace(result, extract="not an archive")
    root = Destination(options.extract_root, None) if options.extract_root else dest
    opener = (
        (lambda: open(part, "rb")) if part is not None else (lambda: dest.open_read(entry.name))
    )
    try:
        done = extract_archive(
            opener, entry.name, root, archive_size=result.size,
            archive_sha256=result.sha256, chunk_size=options.chunk_size,
        )  # fmt: skip
    except (
        UnsafeArchiveError,
        UnsafePathError,
        tarfile.TarError,
        zipfile.BadZipFile,
        OSError,
    ) as err:
        return _replace(result, extract="failed", error=f"extract: {err}")
    return _replace(result, extract=done.status)


def _replace(result: FileResult, **changes) -> FileResult:
    return dataclasses.replace(result, **changes)


def _with_seconds(result: FileResult, seconds: float) -> FileResult:
    return _replace(result, seconds=seconds)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class _ProgressPrinter:
    """In-flight line per file every ``interval_s`` (Ray forwards worker stdout to the driver)."""

    def __init__(self, name: str, interval_s: float):
        self.name = name
        self.interval_s = interval_s
        self.start = self.last = time.perf_counter()
        self.first: int | None = None

    def __call__(self, done: int, total: int | None) -> None:
        now = time.perf_counter()
        if self.first is None:
            self.first = done
        if now - self.last < self.interval_s:
            return
        self.last = now
        rate = (done - self.first) / max(now - self.start, 1e-9)
        of = f" / {format_bytes(total)} ({100 * done / total:.0f}%)" if total else ""
        print(f"  {self.name}: {format_bytes(done)}{of} at {format_bytes(rate)}/s", flush=True)


class _RunProgress:
    """Driver-side line per finished file with the run's overall download rate."""

    def __init__(self, total: int, log: LogFn):
        self.total, self.log = total, log
        self.count = 0
        self.bytes = 0
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def line(self, r: FileResult) -> None:
        self.count += 1
        self.bytes += r.bytes_downloaded
        head = f"[{self.count:>{len(str(self.total))}}/{self.total}] {r.name}"
        if r.status == "failed":
            text = f"{head} FAILED: {r.error}"
        elif r.status == "present":
            text = f"{head} present ({format_bytes(r.size or 0)})"
        else:
            rate = r.bytes_downloaded / r.seconds if r.seconds > 0 else 0.0
            extra = [f"{r.attempts} attempts"] if r.attempts > 1 else []
            if r.resumed_from:
                extra.append(f"resumed at {format_bytes(r.resumed_from)}")
            if r.reason and r.reason != "not in manifest":
                extra.append(f"re-fetched: {r.reason}")
            text = (
                f"{head} fetched {format_bytes(r.size or 0)} in {r.seconds:.1f} s "
                f"({format_bytes(rate)}/s{''.join('; ' + e for e in extra)})"
            )
        if r.extract and r.extract != "failed":
            text += f" [{r.extract}]"
        elif r.extract == "failed":
            text += f" EXTRACT FAILED: {r.error}"
        overall = self.bytes / max(self.elapsed(), 1e-9)
        self.log(f"{text} | run {format_bytes(self.bytes)}, {format_bytes(overall)}/s")
