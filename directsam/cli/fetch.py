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

from directsam.cli.flags import add_address_arg
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
