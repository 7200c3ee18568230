"""Fetch dataset archives (SA-1B and others) from a links file: resumable, verified, with Ray.

``fetch_links(read_links(path), "/data/sa1b")`` downloads every link into the destination with
Range resume, retries, size/checksum checks and an atomic publish, and keeps
``_MANIFEST.json`` up to date; see docs/FETCH.md. Importing this package does no work.
"""

from __future__ import annotations

from directsam.fetch.destination import Destination, UnsafePathError
from directsam.fetch.download import Downloaded, FetchError, RetryPolicy, download_to_part
from directsam.fetch.extract import UnsafeArchiveError, archive_stem, extract_archive
from directsam.fetch.links import (
    LinkEntry,
    parse_links,
    parse_ranges,
    read_links,
    select_entries,
    select_sa1b,
    validate_name,
)
from directsam.fetch.manifest import FileRecord, Manifest, ManifestError
from directsam.fetch.runner import FetchOptions, FetchSummary, FileResult, fetch_links, fetch_one

__all__ = [
    "Destination",
    "Downloaded",
    "FetchError",
    "FetchOptions",
    "FetchSummary",
    "FileRecord",
    "FileResult",
    "LinkEntry",
    "Manifest",
    "ManifestError",
    "RetryPolicy",
    "UnsafeArchiveError",
    "UnsafePathError",
    "archive_stem",
    "download_to_part",
    "extract_archive",
    "fetch_links",
    "fetch_one",
    "parse_links",
    "parse_ranges",
    "read_links",
    "select_entries",
    "select_sa1b",
    "validate_name",
]
