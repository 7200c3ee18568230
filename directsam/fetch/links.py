"""Links files -> validated ``LinkEntry`` list, and shard / name selections over it.

A links file is tab-separated text. Meta's SA-1B file has the header ``file_name<TAB>cdn_link``
and 1000 rows (``sa_000000.tar`` .. ``sa_000999.tar``). The generic mode accepts the same shape
for any dataset's archives, plus optional ``size`` / ``md5`` / ``sha256`` columns that are then
verified, or headerless lines of ``name<TAB>url`` or just ``url`` (name = last path segment).
Blank lines and lines starting with ``#`` are ignored.

File names become paths under the destination, so they are validated here once: a plain file
name, no separators, no ``..``, nothing absolute.
"""

from __future__ import annotations

import fnmatch
import re
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from directsam.config import ConfigError

# Accepted header spellings, lower-cased; the first column of each group is canonical.
_NAME_COLUMNS = ("file_name", "filename", "name", "file")
_URL_COLUMNS = ("cdn_link", "url", "link", "href")
_SIZE_COLUMNS = ("size", "bytes", "content_length")
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_SA1B_SHARD = re.compile(r"^sa_(\d+)\.tar$")
MANIFEST_NAME = "_MANIFEST.json"


@dataclass(frozen=True)
class LinkEntry:
    """One file to fetch.

    Attributes:
        name: file name under the destination (validated: no separators, no ``..``).
        url: ``http(s)://`` address; may carry signed query parameters (CDN tokens).
        size: expected size in bytes when the links file gives one.
        md5: expected lower-case hex MD5 when given.
        sha256: expected lower-case hex SHA-256 when given.
    """

    name: str
    url: str
    size: int | None = None
    md5: str | None = None
    sha256: str | None = None


def validate_name(name: str, where: str = "links file") -> str:
    """Return ``name`` if it is a safe plain file name; raise ``ConfigError`` otherwise.

    A name is written as ``<destination>/<name>``, so anything that could leave the destination
    (``../x``, ``/etc/passwd``, ``a/b``, ``C:x``, ``a\\b``, NUL bytes) is refused.
    """
    bad = None
    if not name or name.strip() != name:
        bad = "empty or padded with whitespace"
    elif name in (".", ".."):
        bad = "is a relative directory reference"
    elif "/" in name or "\\" in name:
        bad = "contains a path separator"
    elif "\x00" in name or any(ord(c) < 32 for c in name):
        bad = "contains control characters"
    elif re.match(r"^[A-Za-z]:", name):
        bad = "looks like a drive-qualified path"
    elif name.endswith(".part") or name.startswith(MANIFEST_NAME):
        # ``*.part`` are our partial downloads and ``_MANIFEST.json*`` our bookkeeping.
        bad = f"clashes with fetch bookkeeping names (*.part, {MANIFEST_NAME})"
    if bad:
        raise ConfigError(f"{where}: unsafe file name {name!r}: {bad}")
    return name


def parse_links(text: str, source: str = "--links") -> list[LinkEntry]:
    """Parse links-file text into entries, in file order.

    Args:
        text: the file's content.
        source: how to name the file in errors (the flag or the path).

    Raises:
        ConfigError: malformed rows, unsafe or duplicate names, bad checksum columns; the
            message names ``source`` and the line number.
    """
    lines = [(i + 1, ln.rstrip("\r\n")) for i, ln in enumerate(text.splitlines())]
    lines = [(n, ln) for n, ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise ConfigError(f"{source}: no links found")
    columns = _header_columns(lines[0][1].split("\t"))
    if columns is not None:
        lines = lines[1:]
    entries: list[LinkEntry] = []
    seen: dict[str, int] = {}
    for lineno, line in lines:
        where = f"{source} line {lineno}"
        fields = [f.strip() for f in line.split("\t")]
        entry = _row_to_entry(fields, columns, where)
        if entry.name in seen:
            raise ConfigError(
                f"{where}: duplicate file name {entry.name!r} (first on line {seen[entry.name]})"
            )
        seen[entry.name] = lineno
        entries.append(entry)
    return entries


def read_links(path: str) -> list[LinkEntry]:
    """Read and parse a links file from a local path or any ``pyarrow.fs`` URI (``s3://...``)."""
    if "://" in path and not path.startswith("file://"):
        import pyarrow.fs as pafs

        fs, inner = pafs.FileSystem.from_uri(path)
        with fs.open_input_stream(inner) as f:
            text = f.read().decode("utf-8")
    else:
        local = path[len("file://") :] if path.startswith("file://") else path
        try:
            with open(local, encoding="utf-8") as f:
                text = f.read()
        except OSError as err:
            raise ConfigError(f"--links {path!r}: cannot read: {err}") from err
    return parse_links(text, source=f"--links {path}")


def parse_ranges(spec: str, flag: str = "--shards") -> list[int]:
    """``"0-99,120"`` -> ``[0, 1, ..., 99, 120]`` (sorted, unique; ranges are inclusive)."""
    out: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
        if not m:
            raise ConfigError(f"{flag} {spec!r}: {part!r} is not N or N-M")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise ConfigError(f"{flag} {spec!r}: range {part!r} is reversed")
        out.update(range(lo, hi + 1))
    return sorted(out)


def sa1b_shard_index(name: str) -> int | None:
    """``"sa_000123.tar"`` -> 123; None for names that are not SA-1B shards."""
    m = _SA1B_SHARD.match(name)
    return int(m.group(1)) if m else None


def select_sa1b(entries: Sequence[LinkEntry], shards: str | None) -> list[LinkEntry]:
    """Entries whose SA-1B shard number (from ``sa_NNNNNN.tar``) is in ``shards``.

    ``shards=None`` keeps every entry. Shard numbers come from the file name, not the line
    position, so a reordered or partial links file selects the same shards.
    """
    if shards is None:
        return list(entries)
    wanted = parse_ranges(shards, "--shards")
    by_index = {sa1b_shard_index(e.name): e for e in entries}
    missing = [i for i in wanted if i not in by_index]
    if missing:
        shown = ", ".join(str(i) for i in missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise ConfigError(f"--shards {shards!r}: shard(s) {shown} not in the links file")
    return [by_index[i] for i in wanted]


def select_entries(entries: Sequence[LinkEntry], select: str | None) -> list[LinkEntry]:
    """Generic selection: ``None`` = all; ``"0-9,12"`` = 0-based line positions among the
    links; otherwise comma-separated names or glob patterns (``"train*.zip,val2017.zip"``).
    """
    if select is None:
        return list(entries)
    if re.fullmatch(r"[\d\s,\-]+", select):
        idx = parse_ranges(select, "--select")
        out_of_range = [i for i in idx if i >= len(entries)]
        if out_of_range:
            raise ConfigError(
                f"--select {select!r}: position {out_of_range[0]} is past the last link "
                f"({len(entries) - 1})"
            )
        return [entries[i] for i in idx]
    chosen: dict[str, LinkEntry] = {}
    for pattern in (p.strip() for p in select.split(",")):
        if not pattern:
            continue
        hits = [e for e in entries if fnmatch.fnmatchcase(e.name, pattern)]
        if not hits:
            raise ConfigError(f"--select {select!r}: {pattern!r} matches no file in the links file")
        for e in hits:
            chosen.setdefault(e.name, e)
    # Keep links-file order so runs are reproducible regardless of pattern order.
    return [e for e in entries if e.name in chosen]


def redact_url(url: str) -> str:
    """Drop query and fragment (signed CDN tokens) so URLs can be logged and stored."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


# ----------------------------------------------------------------------------- helpers


def _header_columns(fields: Iterable[str]) -> dict[str, int] | None:
    """Map canonical column -> index if ``fields`` is a header row, else None."""
    lowered = [f.strip().lower() for f in fields]
    if any("://" in f for f in lowered):
        return None
    cols: dict[str, int] = {}
    for canonical, spellings in (
        ("name", _NAME_COLUMNS),
        ("url", _URL_COLUMNS),
        ("size", _SIZE_COLUMNS),
        ("md5", ("md5", "md5sum")),
        ("sha256", ("sha256", "sha256sum")),
    ):
        for i, f in enumerate(lowered):
            if f in spellings:
                cols[canonical] = i
                break
    if "url" not in cols:
        return None
    return cols


def _row_to_entry(fields: list[str], columns: dict[str, int] | None, where: str) -> LinkEntry:
    if columns is None:
        if len(fields) == 1:
            url = fields[0]
            name = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
        elif len(fields) == 2:
            name, url = fields
        else:
            raise ConfigError(
                f"{where}: expected 'name<TAB>url' or 'url', got {len(fields)} fields"
            )
        size = md5 = sha256 = None
    else:
        if len(fields) <= max(columns.values()):
            raise ConfigError(
                f"{where}: expected {max(columns.values()) + 1} tab-separated fields, got {len(fields)}"
            )
        url = fields[columns["url"]]
        if "name" in columns:
            name = fields[columns["name"]]
        else:
            name = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
        size = _parse_size(fields[columns["size"]], where) if "size" in columns else None
        md5 = _parse_hex(fields[columns["md5"]], 32, "md5", where) if "md5" in columns else None
        sha256 = (
            _parse_hex(fields[columns["sha256"]], 64, "sha256", where)
            if "sha256" in columns
            else None
        )
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise ConfigError(f"{where}: {redact_url(url)!r} is not an http:// or https:// URL")
    return LinkEntry(validate_name(name, where), url, size, md5, sha256)


def _parse_size(value: str, where: str) -> int | None:
    if not value:
        return None
    if not value.isdigit():
        raise ConfigError(f"{where}: size {value!r} is not a whole number of bytes")
    return int(value)


def _parse_hex(value: str, length: int, kind: str, where: str) -> str | None:
    if not value:
        return None
    if len(value) != length or not _HEX.match(value):
        raise ConfigError(f"{where}: {kind} {value!r} is not {length} hex digits")
    return value.lower()
