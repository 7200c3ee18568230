"""Objects (tar shards) on any store: one LIST per prefix page, one streamed GET per object.

* :func:`list_objects` returns name, size and version (S3 ETag; ``<mtime_ns>-<size>`` for
  local and other files) of the files directly under a prefix: on S3 one ``ListObjectsV2``
  call per 1,000 keys, never a request per file.
* :func:`open_object` returns a buffered, sequential reader of one object from a byte offset.
  On S3 (boto3) that is a single ``GET`` with ``Range: bytes=<offset>-`` and
  ``If-Match: <etag>`` whose body is read as it arrives; when the connection drops, times out
  or answers 5xx, :class:`ResumableStream` waits (exponential backoff) and issues a new GET
  from the byte where the body stopped, up to ``StoreOptions.tries`` attempts without
  progress, then raises :class:`ReadRetriesExhausted` with that byte. A changed object (the
  ETag no longer matches) is :class:`ObjectChanged`, never silently mixed bytes. Other
  pyarrow filesystems (``gs://``, ...) are read in 64 MiB ranged reads, local files directly.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from directsam.data.sources import fs
from directsam.data.sources.store import StoreOptions, have_boto3, s3_client

READ_BUFFER = 1 << 20  # bytes per read from the socket / file (tar headers are 512 B)
RANGED_READ = 64 << 20  # bytes per ranged request on pyarrow filesystems without streaming
MAX_BACKOFF_S = 30.0


@dataclass(frozen=True)
class ObjectInfo:
    """One listed object: ``uri`` (as the user spells it), ``size`` in bytes, ``version``."""

    uri: str
    size: int
    version: str

    @property
    def name(self) -> str:
        return self.uri.rstrip("/").rsplit("/", 1)[-1]


class ObjectReadError(OSError):
    """Reading an object failed for good (missing, forbidden, changed or out of retries)."""

    def __init__(self, uri: str, offset: int, detail: str):
        self.uri, self.offset, self.detail = uri, offset, detail
        super().__init__(f"{uri}: {detail}")


class ObjectChanged(ObjectReadError):
    """The object's version differs from the planned one (it was replaced since listing)."""


class ReadRetriesExhausted(ObjectReadError):
    """Transient failures (dropped connection, timeout, 5xx) outlasted every retry."""


def _use_boto3(uri: str) -> bool:
    return uri.startswith("s3://") and not fs.is_registered("s3") and have_boto3()


def _bucket_key(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.split("://", 1)[1].partition("/")
    return bucket, key


def _file_version(mtime_ns: int | None, size: int) -> str:
    return f"{int(mtime_ns or 0)}-{size}"


def list_objects(prefix: str, suffix: str, store: StoreOptions) -> list[ObjectInfo]:
    """Files directly under ``prefix`` whose name ends with ``suffix`` (case-insensitive).

    Sorted by name; hidden names (``.x``) are skipped. ``prefix`` has no query string.
    """
    suffix = suffix.lower()
    if _use_boto3(prefix):
        bucket, key = _bucket_key(prefix)
        key = key.rstrip("/") + "/" if key else ""
        out = []
        pages = s3_client(store).get_paginator("list_objects_v2")
        for page in pages.paginate(Bucket=bucket, Prefix=key, Delimiter="/"):
            for obj in page.get("Contents", []):
                name = obj["Key"][len(key) :]
                if name and not name.startswith(".") and name.lower().endswith(suffix):
                    uri = f"s3://{bucket}/{obj['Key']}"
                    out.append(ObjectInfo(uri, int(obj["Size"]), str(obj["ETag"])))
        return sorted(out, key=lambda o: o.uri)
    return [
        ObjectInfo(e.uri, e.size, _file_version(e.mtime_ns, e.size))
        for e in fs.list_files(prefix, (suffix,), recursive=False)
    ]


def stat_object(uri: str, store: StoreOptions) -> ObjectInfo | None:
    """Size and version of one object (one HEAD on S3), or None when it does not exist."""
    if _use_boto3(uri):
        from botocore.exceptions import ClientError

        bucket, key = _bucket_key(uri)
        try:
            head = s3_client(store).head_object(Bucket=bucket, Key=key)
        except ClientError as err:
            if _status(err) == 404:
                return None
            raise
        return ObjectInfo(uri, int(head["ContentLength"]), str(head["ETag"]))
    import pyarrow.fs as pafs

    filesystem, path, _ = fs.resolve(uri)
    info = filesystem.get_file_info(path)
    if info.type != pafs.FileType.File:
        return None
    return ObjectInfo(uri, int(info.size or 0), _file_version(info.mtime_ns, int(info.size or 0)))


# ----------------------------------------------------------------------------- errors


def _status(err: BaseException) -> int | None:
    response = getattr(err, "response", None)
    if isinstance(response, dict):
        return response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return None


def is_transient(err: BaseException) -> bool:
    """True for failures worth a retry: connection drops, timeouts, throttling and 5xx."""
    if isinstance(err, ObjectReadError):
        return False
    if isinstance(err, (FileNotFoundError, PermissionError, IsADirectoryError)):
        return False
    status = _status(err)
    if status is not None:
        return status >= 500 or status in (408, 429)
    try:
        from botocore.exceptions import BotoCoreError
    except ImportError:  # pragma: no cover - boto3 missing: only OSErrors occur
        BotoCoreError = OSError  # type: ignore[assignment,misc]
    try:
        from urllib3.exceptions import HTTPError as Urllib3Error
    except ImportError:  # pragma: no cover
        Urllib3Error = OSError  # type: ignore[assignment,misc]
    import http.client

    return isinstance(err, (OSError, BotoCoreError, Urllib3Error, http.client.HTTPException))


# ----------------------------------------------------------------------------- streams


class ResumableStream(io.RawIOBase):
    """Sequential reads of ``[start, size)`` of one object over restartable connections.

    ``opener(offset)`` returns a file-like object positioned at ``offset`` (a GET body from
    there). A read that raises a transient error, or ends before ``size``, closes it, sleeps
    ``backoff_s * 2**k`` and reopens at the current offset; ``tries`` consecutive attempts
    without a byte of progress raise :class:`ReadRetriesExhausted`.
    """

    def __init__(
        self,
        opener: Callable[[int], Any],
        uri: str,
        size: int,
        start: int,
        tries: int,
        backoff_s: float,
        sleep: Callable[[float], None] = time.sleep,
    ):
        super().__init__()
        self.opener, self.uri, self.size = opener, uri, size
        self.pos, self.tries, self.backoff_s, self.sleep = start, max(1, tries), backoff_s, sleep
        self.retries = 0  # reopenings after a failure (for logs and tests)
        self._body: Any = None

    def readable(self) -> bool:
        return True

    def _drop(self) -> None:
        body, self._body = self._body, None
        if body is not None:
            try:
                body.close()
            except Exception:  # noqa: BLE001 - a broken connection may fail to close
                pass

    def readinto(self, b: Any) -> int:
        if self.pos >= self.size:
            return 0
        want = min(len(b), self.size - self.pos)
        failures = 0
        while True:
            try:
                if self._body is None:
                    self._body = self.opener(self.pos)
                data = self._body.read(want)
                if not data:
                    raise ConnectionError(
                        f"stream ended at byte {self.pos} of {self.size} (connection closed)"
                    )
                n = len(data)
                b[:n] = data
                self.pos += n
                return n
            except Exception as err:  # noqa: BLE001 - classified below
                self._drop()
                if not is_transient(err):
                    if isinstance(err, ObjectReadError):
                        raise
                    raise ObjectReadError(
                        self.uri, self.pos, f"{type(err).__name__}: {err}"
                    ) from err
                failures += 1
                if failures >= self.tries:
                    raise ReadRetriesExhausted(
                        self.uri,
                        self.pos,
                        f"{type(err).__name__}: {err} (at byte {self.pos}, {failures} tries)",
                    ) from err
                self.retries += 1
                self.sleep(min(MAX_BACKOFF_S, self.backoff_s * 2 ** (failures - 1)))

    def close(self) -> None:
        self._drop()
        super().close()


class _RangedReader:
    """A file-like ``read(n)`` over a pyarrow random-access file in large ranged reads."""

    def __init__(self, handle: Any, offset: int):
        self.handle, self.pos, self.buf = handle, offset, b""

    def read(self, n: int) -> bytes:
        if not self.buf:
            self.buf = self.handle.read_at(RANGED_READ, self.pos)
            self.pos += len(self.buf)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def close(self) -> None:
        self.handle.close()


def _opener(info: ObjectInfo, store: StoreOptions) -> Callable[[int], Any]:
    if _use_boto3(info.uri):
        from botocore.exceptions import ClientError

        bucket, key = _bucket_key(info.uri)
        client = s3_client(store)

        def open_s3(offset: int) -> Any:
            try:
                response = client.get_object(
                    Bucket=bucket, Key=key, Range=f"bytes={offset}-", IfMatch=info.version
                )
            except ClientError as err:
                status = _status(err)
                if status == 412:
                    raise ObjectChanged(
                        info.uri, offset, f"changed since it was listed (ETag {info.version})"
                    ) from None
                if status in (403, 404):
                    raise ObjectReadError(info.uri, offset, f"HTTP {status}: {err}") from None
                raise
            return response["Body"]

        return open_s3
    scheme, _ = fs.split_scheme(info.uri)
    if not scheme:
        path = fs.resolve(info.uri)[1]

        def open_local(offset: int) -> Any:
            handle = open(path, "rb")  # noqa: SIM115 - closed by ResumableStream
            st = os.fstat(handle.fileno())
            if _file_version(st.st_mtime_ns, st.st_size) != info.version:
                handle.close()
                raise ObjectChanged(info.uri, offset, "changed since it was listed (mtime/size)")
            handle.seek(offset)
            return handle

        return open_local

    def open_arrow(offset: int) -> Any:
        filesystem, path, _ = fs.resolve(info.uri)
        return _RangedReader(filesystem.open_input_file(path), offset)

    return open_arrow


def open_object(
    info: ObjectInfo,
    offset: int,
    store: StoreOptions,
    sleep: Callable[[float], None] = time.sleep,
) -> io.BufferedReader:
    """A buffered sequential reader of ``info`` from byte ``offset`` (see module docstring)."""
    raw = ResumableStream(
        _opener(info, store), info.uri, info.size, offset, store.tries, store.backoff_s, sleep
    )
    return io.BufferedReader(raw, buffer_size=READ_BUFFER)
