"""The tar format, read sequentially: ustar, GNU long names and PAX headers, no seeking.

:func:`iter_members` yields the regular files of a tar from a byte stream positioned at a
header boundary, with each member's offsets, so that a reader can resume at a member and name
the byte of any damage (:class:`TarDamage`). Python's ``tarfile`` in stream mode parses the
same formats but accepts a tar that simply ends (no end-of-archive marker) as complete, which
would drop the images of a truncated shard silently.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from directsam.data.sources.objects import ObjectReadError

BLOCK_SIZE = 512
_ZERO = bytes(BLOCK_SIZE)


class TarDamage(Exception):
    """The tar cannot be parsed past ``offset``; ``member`` is the member being read, if any."""

    def __init__(self, offset: int, reason: str, member: str | None = None):
        self.offset, self.reason, self.member = offset, reason, member
        super().__init__(f"{reason} (at byte {offset})")


@dataclass
class Member:
    """One regular file of a tar: its header offset (first extension header included), data
    range, the offset right after its padding, and its bytes when they were asked for."""

    name: str
    offset: int
    data_offset: int
    size: int
    end: int
    data: bytes | None


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = stream.read(n - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _skip(stream: BinaryIO, n: int) -> int:
    skipped = 0
    while skipped < n:
        chunk = stream.read(min(n - skipped, 1 << 20))
        if not chunk:
            break
        skipped += len(chunk)
    return skipped


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _number(field: bytes) -> int:
    """A numeric header field: octal text, or GNU base-256 when the high bit is set."""
    if field[0] & 0x80:
        value = int.from_bytes(field[1:], "big")
        return value - (1 << (8 * len(field) - 1)) if field[0] & 0x40 else value
    text = field.replace(b"\0", b" ").strip()
    return int(text, 8) if text else 0


def _checksum_ok(header: bytes) -> bool:
    try:
        stored = _number(header[148:156])
    except ValueError:
        return False
    blanked = header[:148] + b" " * 8 + header[156:]
    unsigned = sum(blanked)  # C-level sum over bytes; the signed variant only when it differs
    if stored == unsigned:
        return True
    return stored == unsigned - 256 * sum(1 for b in blanked if b > 127)


def _pax_records(data: bytes) -> dict[str, str]:
    out, pos = {}, 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            break
        length = int(data[pos:space])
        if length <= 0:
            break
        key, _, value = data[space + 1 : pos + length - 1].partition(b"=")
        out[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return out


def iter_members(
    stream: BinaryIO, offset: int = 0, want: Callable[[str], bool] = lambda name: True
) -> Iterator[Member]:
    """Regular files of a tar read sequentially from ``stream`` positioned at ``offset``.

    ``offset`` must be a header boundary. Data of members ``want`` rejects is skipped (still
    read, never requested separately). Ends at the end-of-archive marker.

    Raises:
        TarDamage: a corrupt or truncated header, member data cut short, or no end marker.
    """
    pos = offset
    long_name: str | None = None
    pax: dict[str, str] = {}
    first: int | None = None  # offset of the current member's first (extension) header
    while True:
        header = _read_exact(stream, BLOCK_SIZE)
        if not header:
            raise TarDamage(pos, "the tar ends without its end-of-archive marker (truncated?)")
        if len(header) < BLOCK_SIZE:
            raise TarDamage(pos, f"the tar is cut inside a header ({len(header)} of 512 bytes)")
        if header == _ZERO:
            return
        if not _checksum_ok(header):
            raise TarDamage(pos, "corrupt tar header (checksum mismatch)")
        start = pos if first is None else first
        typeflag = header[156:157]
        try:
            size = int(pax["size"]) if "size" in pax else _number(header[124:136])
        except ValueError:
            raise TarDamage(pos, "corrupt tar header (size field)") from None
        data_offset = pos + BLOCK_SIZE
        end = data_offset + -(-size // BLOCK_SIZE) * BLOCK_SIZE
        if typeflag in (b"L", b"K", b"x", b"g"):  # GNU long name/link, PAX headers
            data = _read_exact(stream, end - data_offset)
            if len(data) < end - data_offset:
                raise TarDamage(data_offset + len(data), "the tar is cut inside a header")
            if typeflag == b"L":
                long_name = _text(data[:size])
            elif typeflag == b"x":
                pax.update(_pax_records(data[:size]))
            first, pos = start, end
            continue
        name = long_name or pax.get("path")
        if name is None:
            name = _text(header[0:100])
            prefix = _text(header[345:500]) if header[257:263] == b"ustar\x00" else ""
            name = f"{prefix}/{name}" if prefix else name
        long_name, pax, first = None, {}, None
        regular = typeflag in (b"0", b"\0", b"7")
        try:
            data, end = _member_data(stream, name, regular, regular and want(name), size, end)
        except ObjectReadError as err:  # name whose bytes were lost: a resume starts at `start`
            err.member, err.member_start = (name, start) if regular else (None, None)
            raise
        if regular:
            yield Member(name, start, data_offset, size, end, data)
        pos = end


def _member_data(
    stream: BinaryIO, name: str, regular: bool, keep: bool, size: int, end: int
) -> tuple[bytes | None, int]:
    """Read (``keep``) or skip one member's data and padding; (data, offset after it).

    Raises:
        TarDamage: the data is cut short.
    """
    data_offset = end - -(-size // BLOCK_SIZE) * BLOCK_SIZE
    if keep:
        data = _read_exact(stream, size)
        if len(data) < size:
            got = len(data)
            raise TarDamage(data_offset + got, f"{name} is cut short ({got} of {size} bytes)", name)
        padding = _skip(stream, end - data_offset - size)
        if padding < end - data_offset - size:  # the member is whole; the tar ends here
            end = data_offset + size + padding
        return data, end
    got = _skip(stream, end - data_offset)
    if got < size:
        who = name if regular else None
        raise TarDamage(data_offset + got, f"{name} is cut short ({got} of {size} bytes)", who)
    return None, end


def wds_key(name: str) -> tuple[str, str]:
    """webdataset grouping: ``dir/sa_1.jpg`` -> (``dir/sa_1``, ``jpg``) (split at the first dot)."""
    head, base = os.path.split(name)
    key, _, ext = base.partition(".")
    return (f"{head}/{key}" if head else key), ext.lower()
