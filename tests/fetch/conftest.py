"""Fixtures for fetch tests: a loopback HTTP server, generated tar shards, links files.

Every test here also runs with ``socket.create_connection`` (what urllib/http.client use)
limited to loopback addresses, so no fetch test can reach a host outside the machine.
"""

from __future__ import annotations

import io
import json
import socket
import tarfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest

from tests.fetch.server import FileServer

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    real = socket.create_connection

    def guarded(address, *args, **kwargs):
        host = address[0]
        if host not in _LOOPBACK:
            raise AssertionError(f"fetch test tried to connect to {host!r}")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", guarded)
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def server():
    with FileServer() as srv:
        yield srv


def make_tar(
    members: Iterable[tuple[str, bytes]], kinds: dict[str, tuple[str, str]] | None = None
) -> bytes:
    """Tar bytes of ``(name, data)`` regular files; ``kinds[name] = ("sym"|"hard"|"dir", target)``
    turns an entry into a symlink / hard link / directory instead."""
    kinds = kinds or {}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            kind, target = kinds.get(name, ("file", ""))
            if kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, target
                tf.addfile(info)
            elif kind == "hard":
                info.type, info.linkname = tarfile.LNKTYPE, target
                tf.addfile(info)
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def sa1b_shard(index: int, images: int = 2, seed: int = 0) -> tuple[str, bytes, dict[str, bytes]]:
    """``("sa_00000N.tar", tar bytes, {member: bytes})`` with SA-1B-style ``./sa_<id>.jpg|json``."""
    rng = np.random.default_rng(seed * 1000 + index)
    members: dict[str, bytes] = {}
    for k in range(images):
        image_id = index * images + k + 1
        # Incompressible payload, a few hundred kB in total: big enough for mid-file cuts.
        members[f"sa_{image_id}.jpg"] = rng.integers(
            0, 256, 60_000 + 997 * k, dtype=np.uint8
        ).tobytes()
        members[f"sa_{image_id}.json"] = json.dumps({"image": {"image_id": image_id}}).encode()
    tar = make_tar((f"./{n}", d) for n, d in members.items())
    return f"sa_{index:06d}.tar", tar, members


@pytest.fixture
def sa1b(server, tmp_path):
    """Three SA-1B shards served by ``server`` plus Meta-style links file; returns a namespace."""

    class Sa1b:
        pass

    ns = Sa1b()
    ns.shards = {}
    ns.members = {}
    for i in range(3):
        name, tar, members = sa1b_shard(i)
        server.files[name] = tar
        ns.shards[name] = tar
        ns.members[name] = members
    lines = ["file_name\tcdn_link"]
    # Signed-looking query strings, as in Meta's file; they must never reach the manifest.
    lines += [f"{n}\t{server.url(n, 'oh=secret&oe=123')}" for n in ns.shards]
    ns.links = tmp_path / "sa1b_links.txt"
    ns.links.write_text("\n".join(lines) + "\n")
    ns.server = server
    return ns


def read_manifest(root: Path) -> dict:
    return json.loads((root / "_MANIFEST.json").read_text())
