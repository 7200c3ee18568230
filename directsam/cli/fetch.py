"""``directsam fetch-sa1b`` and ``directsam fetch``: links file -> verified files (+ manifest).

Progress lines go to stderr; the last line on stdout is a JSON summary. Exit status 0 when
every selected file is present (and extracted, with ``--extract``), 1 when some file failed,
2 for an unreadable manifest (flag mistakes raise ``ConfigError``, which the dispatcher turns
into status 2).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from directsam.cli.command import standalone_main
from directsam.cli.flags import add_address_arg, add_smoke_test_arg
from directsam.config import ConfigError
from directsam.fetch.links import LinkEntry, read_links, select_entries, select_sa1b
from directsam.fetch.manifest import ManifestError
from directsam.fetch.runner import FetchOptions, FetchSummary, fetch_links

# argparse dest -> FetchOptions field; flags default to None so FetchOptions stays the one
# source of defaults.
_OPTION_FLAGS = {
    "parallel": "parallel",
    "retries": "retries",
    "backoff": "backoff_s",
    "timeout": "timeout_s",
    "verify": "verify",
    "extract_root": "extract_root",
    "staging": "staging",
    "task_cpus": "task_cpus",
    "progress_interval": "progress_interval_s",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``fetch-sa1b`` and ``fetch`` subcommands (each sets ``func``)."""
    p = subparsers.add_parser(
        "fetch-sa1b",
        help="download SA-1B tar shards from Meta's links file (resumable, verified)",
        description="Download SA-1B shards listed in Meta's links file (file_name<TAB>cdn_link) "
        "with Ray tasks: Range resume, retries, size/checksum checks, atomic publish and a "
        "manifest (_MANIFEST.json). Re-running fetches only what is missing or broken.",
    )
    add_fetch_sa1b_args(p)
    p.set_defaults(func=_run_sa1b)

    g = subparsers.add_parser(
        "fetch",
        help="download the archives of any links file (name<TAB>url, optional size/md5/sha256)",
        description="Generic links-file fetch: a TSV with a header naming file_name/name and "
        "cdn_link/url columns (optional size, md5, sha256 columns are verified), or headerless "
        "'name<TAB>url' / 'url' lines.",
    )
    g.add_argument("--links", required=True, help="links file (local path or s3://...)")
    g.add_argument("--output", required=True, help="destination folder or URI")
    g.add_argument(
        "--select",
        default=None,
        help='which links: 0-based positions "0-9,12", or names/globs "train*.zip,val.zip"',
    )
    _add_common(g)
    g.set_defaults(func=_run_generic)


def add_fetch_sa1b_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    """The ``fetch-sa1b`` flags (shared with ``ray_jobs/fetch_sa1b.py``)."""
    p.add_argument("--links", required=required, help="links file (local path or s3://...)")
    p.add_argument(
        "--output", required=required, help="destination folder or URI (s3://bucket/sa1b)"
    )
    p.add_argument(
        "--shards",
        default=None,
        help='SA-1B shard numbers from the file names, e.g. "0-99,120" (default: all)',
    )
    _add_common(p)


def _add_common(p: argparse.ArgumentParser) -> None:
    d = FetchOptions()
    p.add_argument(
        "--parallel", type=int, default=None, help=f"files in flight (default {d.parallel})"
    )
    p.add_argument(
        "--retries", type=int, default=None, help=f"extra attempts per file (default {d.retries})"
    )
    p.add_argument(
        "--backoff", type=float, default=None, help=f"first retry delay, s (default {d.backoff_s})"
    )
    p.add_argument(
        "--timeout", type=float, default=None, help=f"socket timeout, s (default {d.timeout_s})"
    )
    p.add_argument(
        "--verify",
        choices=("size", "checksum"),
        default=None,
        help="check of files already fetched: size (stat, default) or checksum (re-hash)",
    )
    p.add_argument("--extract", action="store_true", help="also write root/<stem>/... folders")
    p.add_argument(
        "--extract-root", default=None, help="where extracted folders go (default: --output)"
    )
    p.add_argument("--staging", default=None, help="local folder for part files of remote outputs")
    p.add_argument(
        "--no-ray", action="store_true", help="run in local threads instead of Ray tasks"
    )
    add_address_arg(p)
    p.add_argument(
        "--shared-storage",
        action="store_true",
        help="a local --output is shared by all nodes (else tasks stay on the driver's node)",
    )
    p.add_argument(
        "--task-cpus", type=float, default=None, help=f"CPUs per Ray task (default {d.task_cpus})"
    )
    p.add_argument(
        "--progress-interval",
        type=float,
        default=None,
        help=f"seconds between in-flight progress lines (default {d.progress_interval_s})",
    )


def options_from_args(args: argparse.Namespace) -> FetchOptions:
    """:class:`FetchOptions` from parsed flags (unset flags keep the library defaults)."""
    values = {
        f: getattr(args, dest)
        for dest, f in _OPTION_FLAGS.items()
        if getattr(args, dest) is not None
    }
    options = FetchOptions(
        **values,
        extract=bool(args.extract),
        use_ray=not args.no_ray,
        shared_storage=bool(args.shared_storage),
    )
    options.validate()
    return options


def summary_dict(summary: FetchSummary) -> dict:
    """JSON-able summary: counts, bytes, rate, failures with their errors, manifest path."""
    return {
        "fetched": summary.counts.get("fetched", 0),
        "present": summary.counts.get("present", 0),
        "failed": {r.name: r.error for r in summary.failed},
        "bytes_downloaded": summary.bytes_downloaded,
        "seconds": round(summary.seconds, 3),
        "bytes_per_s": round(summary.rate, 1),
        "manifest": summary.manifest,
    }


def run_fetch(args: argparse.Namespace, entries: list[LinkEntry]) -> int:
    """Shared body of both commands (also used by ``ray_jobs/fetch_sa1b.py``)."""
    options = options_from_args(args)
    if options.use_ray:
        from directsam.raycluster import init_ray

        init_ray(args.address)
    try:
        summary = fetch_links(entries, args.output, options=options)
    except ManifestError as err:
        print(f"directsam fetch: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(summary_dict(summary), sort_keys=True), flush=True)
    return 1 if summary.failed else 0


def _run_sa1b(args: argparse.Namespace) -> int:
    return run_fetch(args, select_sa1b(read_links(args.links), args.shards))


def _run_generic(args: argparse.Namespace) -> int:
    return run_fetch(args, select_entries(read_links(args.links), args.select))


def _smoke_test(args: argparse.Namespace) -> int:
    """Serve two tiny shards from a temp dir on 127.0.0.1 and fetch them twice."""
    import io
    import shutil
    import tarfile
    import tempfile
    import threading
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
    from pathlib import Path

    tmp = Path(tempfile.mkdtemp(prefix="fetch_sa1b_smoke_"))
    (tmp / "srv").mkdir()
    for i in range(2):
        with tarfile.open(tmp / "srv" / f"sa_{i:06d}.tar", "w") as tf:
            data = bytes(range(256)) * (40 + i)
            info = tarfile.TarInfo(f"./sa_{i + 1}.jpg")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    handler = partial(SimpleHTTPRequestHandler, directory=str(tmp / "srv"))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    port = httpd.server_address[1]
    lines = [f"sa_{i:06d}.tar\thttp://127.0.0.1:{port}/sa_{i:06d}.tar" for i in range(2)]
    (tmp / "links.txt").write_text("file_name\tcdn_link\n" + "\n".join(lines) + "\n")
    args.links, args.output, args.extract = str(tmp / "links.txt"), str(tmp / "out"), True
    try:
        codes = [run_fetch(args, read_links(args.links)) for _ in range(2)]
    finally:
        httpd.shutdown()
    ok = (tmp / "out" / "sa_000001" / "sa_2.jpg").is_file()
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"smoke test: exit codes {codes}, extracted layout present: {ok}")
    return 0 if codes == [0, 0] and ok else 1


def _add_job_args(parser: argparse.ArgumentParser) -> None:
    add_fetch_sa1b_args(parser, required=False)
    add_smoke_test_arg(parser, help="local end-to-end check")


def _run_job(args: argparse.Namespace) -> int:
    if args.smoke_test:
        return _smoke_test(args)
    if not args.links or not args.output:
        raise ConfigError("--links and --output are required (or --smoke-test)")
    return _run_sa1b(args)


def fetch_sa1b_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ray_jobs/fetch_sa1b.py``: the ``fetch-sa1b`` flags plus
    ``--smoke-test`` (two generated shards served on 127.0.0.1, fetched twice)."""
    return standalone_main("fetch_sa1b", _add_job_args, _run_job, argv,
                           description="Fetch SA-1B shards on a Ray cluster: one task per shard, "
                           "resumable, verified, with a manifest.")  # fmt: skip
