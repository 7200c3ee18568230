"""One labeling run per output generation at a time: a lease file with a heartbeat.

``OUTPUT/<dataset>/gen-<sha>/_lease.json`` names the run that writes the generation
(``host:pid:token``), when it started and its last heartbeat. A second run on the same
generation refuses to start while the lease is fresh, with a message naming the owner; a run
that died (SIGKILL, lost node) stops beating, and its lease expires ``ttl_s`` after the last
heartbeat, so the next run takes over without manual cleanup.

Taking the lease is write, wait ``settle_s``, read back: of two runs that start at the same
moment the later write wins and the other sees a foreign owner and refuses. Object stores
have no atomic create here, so a run also re-reads the lease at every heartbeat and stops
(:class:`LeaseLostError`, before its next shard write) if another run holds it. Shards are
written whole and atomically either way, so even then no row is written twice.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from directsam.config import ConfigError
from directsam.data.sources import fs
from directsam.data.sources.shards.layout import LEASE_FILE, read_json, write_json_atomic


class LeaseHeldError(ConfigError):
    """Another live run holds the generation's lease."""


class LeaseLostError(RuntimeError):
    """This run's lease was taken over (it had stopped heartbeating for longer than its TTL)."""


def _read(uri: str) -> dict[str, Any] | None:
    try:
        return read_json(uri)
    except (ValueError, OSError):  # a half-visible or garbled lease counts as none
        return None


class Lease:
    """The writer's lease on one generation folder (a context manager).

    Args:
        directory: the generation folder.
        ttl_s: a lease without a heartbeat for this long is expired.
        settle_s: wait between writing the lease and reading it back.
        clock: wall clock (seconds since the epoch; heartbeats are compared across hosts).
    """

    def __init__(
        self,
        directory: str,
        ttl_s: float = 120.0,
        settle_s: float = 0.5,
        clock: Callable[[], float] = time.time,
    ):
        self.uri = fs.join(directory, LEASE_FILE)
        self.ttl_s, self.settle_s, self.clock = float(ttl_s), float(settle_s), clock
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.started = clock()
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _record(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "started": self.started,
            "heartbeat": self.clock(),
            "ttl_s": self.ttl_s,
        }

    def _refuse(self, held: dict[str, Any]) -> LeaseHeldError:
        age = self.clock() - float(held.get("heartbeat", 0))
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(held.get("started", 0)))
        return LeaseHeldError(
            f"--output: {self.uri.rsplit('/', 1)[0]} is being written by another labeling run "
            f"({held.get('owner')}, started {started}, last heartbeat {age:.0f} s ago). Its "
            f"lease expires {held.get('ttl_s', self.ttl_s):.0f} s after its last heartbeat. "
            "Wait for it to finish, or use another --output"
        )

    def held_by_other(self) -> dict[str, Any] | None:
        """The current lease when a live other run holds it, else None."""
        held = _read(self.uri)
        if held is None or held.get("owner") == self.owner:
            return None
        if self.clock() - float(held.get("heartbeat", 0)) >= float(held.get("ttl_s", 0)):
            return None  # expired: its owner stopped beating
        return held

    def acquire(self) -> Lease:
        """Take the lease and start the heartbeat thread.

        Raises:
            LeaseHeldError: another live run holds it (the message names it).
        """
        held = self.held_by_other()
        if held is not None:
            raise self._refuse(held)
        write_json_atomic(self.uri, self._record())
        time.sleep(self.settle_s)
        now = _read(self.uri)
        if now is None or now.get("owner") != self.owner:
            raise self._refuse(now or {"owner": "unknown"})
        self._thread = threading.Thread(target=self._beat, name="directsam-lease", daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        interval = max(0.05, self.ttl_s / 4)
        while not self._stop.wait(interval):
            held = _read(self.uri)
            if held is None or held.get("owner") != self.owner:
                self.lost = f"lease taken over by {held.get('owner') if held else 'nobody'}"
                return
            try:
                write_json_atomic(self.uri, self._record())
            except OSError:  # a transient store error: the next beat tries again
                continue

    def check(self) -> None:
        """Raise :class:`LeaseLostError` when another run took the lease over."""
        if self.lost is not None:
            raise LeaseLostError(f"{self.uri}: {self.lost}; stopping before writing more shards")

    def release(self) -> None:
        """Stop beating and delete the lease if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        held = _read(self.uri)
        if held is not None and held.get("owner") == self.owner:
            filesystem, path, _ = fs.resolve(self.uri)
            filesystem.delete_file(path)

    def __enter__(self) -> Lease:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
