"""URIs -> bytes: local paths, ``s3://``/``gs://`` (pyarrow filesystems) and tar members.

A ``source_uri`` is a local path, a URI with a scheme pyarrow understands, or
``<tar uri>::<member>`` for a member of a tar shard. ``s3://`` URIs are served by an
``S3FileSystem`` built from the process's :class:`~directsam.data.sources.store.StoreOptions`
(:func:`set_store`; the URI's own ``?endpoint_override=...&scheme=...`` query wins), so an
endpoint set once for a job reaches every read. Whole tars are streamed by
``directsam.data.sources.objects``; this module reads single files and single tar members
(one ranged read each, for small listed inputs and for readers of ``source_uri``).
"""

from __future__ import annotations

import functools
import os
import tarfile
from dataclasses import dataclass
from typing import Any

from directsam.data.sources.store import StoreOptions
from directsam.schema import READ_FAILED, InputError

TAR_SEP = "::"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class FileEntry:
    """One listed file: ``uri`` (as a user would write it), ``rel`` (path below the listed root)."""

    uri: str
    rel: str
    size: int
    mtime_ns: int | None = None


def split_scheme(uri: str) -> tuple[str, str]:
    """``"s3://b/k"`` -> ``("s3", "b/k")``; local paths and ``file://`` -> ``("", abspath)``."""
    if uri.startswith("file://"):
        return "", os.path.abspath(uri[len("file://") :])
    if "://" in uri:
        scheme, rest = uri.split("://", 1)
        return scheme, rest
    return "", os.path.abspath(os.path.expanduser(uri))


# scheme -> pyarrow filesystem used instead of FileSystem.from_uri (see register_filesystem).
_REGISTERED: dict[str, Any] = {}
_STORE: list[StoreOptions] = []  # the process's S3 settings (set_store), else the environment's


def register_filesystem(scheme: str, filesystem: Any | None) -> None:
    """Serve URIs ``<scheme>://bucket/key`` from ``filesystem`` (paths ``"bucket/key"``).

    For tests (an in-memory filesystem standing in for a bucket) and for stores pyarrow cannot
    build from a URI. ``None`` removes the registration. Registrations are per process; for
    S3-protocol endpoints use :func:`set_store` / the job's ``--s3-endpoint`` instead, which
    reach Ray workers.
    """
    if filesystem is None:
        _REGISTERED.pop(scheme, None)
    else:
        _REGISTERED[scheme] = filesystem
    _tar_index_cached.cache_clear()


def set_store(opts: StoreOptions | None) -> None:
    """Use ``opts`` for every ``s3://`` URI this process resolves (None: the environment's).

    Readers call this per batch: the same settings again keep the tar index cache."""
    if _STORE == ([] if opts is None else [opts]):
        return
    _STORE.clear()
    if opts is not None:
        _STORE.append(opts)
    _tar_index_cached.cache_clear()


def current_store() -> StoreOptions:
    """The process's S3 settings: :func:`set_store`'s, else from the AWS environment."""
    from directsam.data.sources.store import options_from_env

    return _STORE[0] if _STORE else options_from_env()


def is_registered(scheme: str) -> bool:
    return scheme in _REGISTERED


@functools.lru_cache(maxsize=32)
def _from_uri(scheme: str, authority: str) -> Any:
    import pyarrow.fs as pafs

    fs, _ = pafs.FileSystem.from_uri(f"{scheme}://{authority}")
    return fs


def resolve(uri: str) -> tuple[Any, str, str]:
    """``uri`` -> (pyarrow filesystem, path inside it, scheme prefix such as ``"s3://"``).

    A query on an ``s3://`` URI (``?endpoint_override=host:port&scheme=http&region=...``)
    overrides the process's settings for this URI and is not part of the path. Filesystems are
    cached per settings (S3) or per scheme and bucket, so credentials are resolved once.
    """
    import pyarrow.fs as pafs

    scheme, rest = split_scheme(uri)
    if not scheme:
        return pafs.LocalFileSystem(), rest, ""
    registered = _REGISTERED.get(scheme)
    if scheme == "s3" and registered is None:
        from directsam.data.sources.store import s3_filesystem, split_uri

        clean, opts = split_uri(uri)
        rest = clean.split("://", 1)[1]
        return s3_filesystem(opts.merged(current_store())), rest.rstrip("/"), "s3://"
    rest = rest.split("?", 1)[0]
    authority = rest.split("/", 1)[0]
    # pyarrow filesystem paths are "bucket/key": the URI without its scheme.
    fs = registered if registered is not None else _from_uri(scheme, authority)
    return fs, rest.rstrip("/"), scheme + "://"


def join(uri: str, *parts: str) -> str:
    """Join path parts onto a local path or URI with ``/``."""
    out = uri.rstrip("/")
    for part in parts:
        out = f"{out}/{part.strip('/')}"
    return out


def is_dir(uri: str) -> bool:
    import pyarrow.fs as pafs

    fs, path, _ = resolve(uri)
    return fs.get_file_info(path).type == pafs.FileType.Directory


def is_file(uri: str) -> bool:
    import pyarrow.fs as pafs

    fs, path, _ = resolve(uri)
    return fs.get_file_info(path).type == pafs.FileType.File


def list_files(
    uri: str, extensions: tuple[str, ...] | None = None, recursive: bool = True
) -> list[FileEntry]:
    """Files below ``uri`` (case-insensitive extension filter), sorted by relative path.

    Hidden files and folders (``.name``, e.g. our ``.tmp`` writes) are skipped.
    """
    import pyarrow.fs as pafs

    fs, path, prefix = resolve(uri)
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=recursive, allow_not_found=True))
    base = path.rstrip("/") + "/"
    out = []
    for info in infos:
        if info.type != pafs.FileType.File or not info.path.startswith(base):
            continue
        rel = info.path[len(base) :]
        if any(part.startswith(".") for part in rel.split("/")):
            continue
        if extensions is not None and not rel.lower().endswith(extensions):
            continue
        out.append(FileEntry(prefix + info.path, rel, int(info.size or 0), info.mtime_ns))
    return sorted(out, key=lambda e: e.rel)


def list_dirs(uri: str) -> list[str]:
    """Immediate sub-folders of ``uri`` (URIs), sorted."""
    import pyarrow.fs as pafs

    fs, path, prefix = resolve(uri)
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=False, allow_not_found=True))
    return sorted(
        prefix + i.path
        for i in infos
        if i.type == pafs.FileType.Directory and not i.base_name.startswith(".")
    )


def split_member(uri: str) -> tuple[str, str | None]:
    """``"a.tar::sa_1.jpg"`` -> ``("a.tar", "sa_1.jpg")``; plain URIs -> ``(uri, None)``."""
    if TAR_SEP in uri:
        tar, member = uri.split(TAR_SEP, 1)
        return tar, member
    return uri, None


def _read_whole(uri: str) -> bytes:
    fs, path, _ = resolve(uri)
    with fs.open_input_file(path) as f:
        return f.read()


def read_range(uri: str, offset: int, size: int) -> bytes:
    """``size`` bytes of the file ``uri`` from ``offset`` (one ranged GET on object stores)."""
    fs, path, _ = resolve(uri)
    with fs.open_input_file(path) as f:
        data = f.read_at(size, offset)
    if len(data) != size:
        raise OSError(f"short read: {len(data)} of {size} bytes at offset {offset} (truncated?)")
    return data


def tar_index(tar_uri: str) -> dict[str, tuple[int, int]]:
    """``{member name: (data offset, size)}`` of the regular files in a tar, from its headers.

    Raises:
        OSError / tarfile.TarError: the tar cannot be opened or its first header is corrupt.
        A tar truncated later is indexed up to the damage (members past it are absent; a
        member whose data is cut short fails when read).
    """
    return dict(_tar_index_cached(tar_uri))


@functools.lru_cache(maxsize=16)
def _tar_index_cached(tar_uri: str) -> dict[str, tuple[int, int]]:
    """The cached index; shared between callers, so read it, never change it."""
    fs, path, _ = resolve(tar_uri)
    out: dict[str, tuple[int, int]] = {}
    with fs.open_input_file(path) as f:
        # "r:" on a seekable file reads only the 512-byte headers and seeks over member data.
        with tarfile.open(fileobj=f, mode="r:") as tf:  # type: ignore[arg-type]
            try:
                for info in tf:
                    if info.isfile():
                        out[info.name] = (info.offset_data, info.size)
            except (tarfile.TarError, OSError, EOFError):
                # Truncated after some members: keep what was indexed (see docstring).
                pass
    return out


def read_uri(uri: str, offset: int = -1, size: int = -1) -> bytes:
    """Read any ``source_uri``: local path, pyarrow URI, or ``<tar>::<member>``.

    Args:
        uri: where the bytes are.
        offset, size: optional byte range of a tar member inside its tar (from the listing);
            without them the tar's header index is built (once per tar and process).

    Raises:
        InputError(READ_FAILED): missing file or member, permission, network or short read;
            the detail names the URI.
    """
    try:
        tar, member = split_member(uri)
        if member is None:
            return _read_whole(uri)
        if offset < 0 or size < 0:
            found = _tar_index_cached(tar).get(member)
            if found is None:
                raise FileNotFoundError(f"no member {member!r} in {tar}")
            offset, size = found
        return read_range(tar, offset, size)
    except InputError:
        raise
    except (OSError, tarfile.TarError, ValueError, EOFError) as err:
        raise InputError(READ_FAILED, f"{uri}: {type(err).__name__}: {err}") from None
