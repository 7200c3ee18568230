"""A fault-injecting HTTP/1.1 proxy on 127.0.0.1 in front of the S3 test server.

It forwards requests one by one per client connection and can, per object path:

* ``readable_to``: serve a GET body only up to an absolute byte of the object, then drop the
  connection (a server dying at that byte; every later GET from there gets nothing), for
  ``times`` responses (None: always);
* ``stall_at`` + ``stall_s``: send the body up to a byte, then go silent for ``stall_s`` and
  drop the connection (the client's read timeout fires first);
* ``every_503``: answer ``503 Slow Down`` to every k-th request instead of forwarding it.

Counters say how often each fault fired, so a test can check that it really happened.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

_SLOW_DOWN = (
    b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>SlowDown</Code>"
    b"<Message>Please reduce your request rate.</Message></Error>"
)


@dataclass
class Rule:
    """A fault on responses to GETs whose path ends with ``suffix``."""

    suffix: str
    readable_to: int | None = None
    stall_at: int | None = None
    stall_s: float = 0.0
    times: int | None = 1
    fired: int = 0

    def active(self) -> bool:
        return self.times is None or self.fired < self.times


@dataclass
class FaultProxy:
    upstream_port: int
    every_503: int | None = None
    rules: list[Rule] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: {"requests": 0, "503": 0})

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def query(self, uri: str) -> str:
        return f"{uri}?endpoint_override=127.0.0.1:{self.port}&scheme=http"

    def close(self) -> None:
        self.closed = True
        self.sock.close()

    # ------------------------------------------------------------------ plumbing

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = None
        try:
            reader = client.makefile("rb")
            while True:
                request = _read_message(reader, is_response=False)
                if request is None:
                    return
                head, body, method, path, _ = request
                with self.lock:
                    self.counts["requests"] += 1
                    n = self.counts["requests"]
                    send_503 = self.every_503 is not None and n % self.every_503 == 0
                    if send_503:
                        self.counts["503"] += 1
                if send_503:
                    client.sendall(
                        b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\n"
                        + f"Content-Length: {len(_SLOW_DOWN)}\r\n\r\n".encode()
                        + _SLOW_DOWN
                    )
                    continue
                if upstream is None:
                    upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
                    up_reader = upstream.makefile("rb")
                upstream.sendall(head + body)
                response = _read_message(up_reader, is_response=True, method=method)
                if response is None:
                    return
                r_head, r_body, _, _, status = response
                ok = 200 <= status < 300
                if not self._respond(client, method if ok else "", path, head, r_head, r_body):
                    return
        except OSError:
            return
        finally:
            for s in (client, upstream):
                if s is not None:
                    try:
                        s.close()
                    except OSError:
                        pass

    def _rule(self, method: str, path: str) -> Rule | None:
        if method != "GET":
            return None
        with self.lock:
            for rule in self.rules:
                if path.split("?")[0].endswith(rule.suffix) and rule.active():
                    rule.fired += 1
                    return rule
        return None

    def _respond(
        self, client: socket.socket, method: str, path: str, req: bytes, head: bytes, body: bytes
    ) -> bool:
        """Send the response (or a broken part of it); False when the connection is dropped."""
        rule = self._rule(method, path)
        if rule is None:
            client.sendall(head + body)
            return True
        match = re.search(rb"(?i)\r\nrange: bytes=(\d+)-", req)
        start = int(match.group(1)) if match else 0
        if rule.readable_to is not None:
            client.sendall(head + body[: max(0, rule.readable_to - start)])
            return False
        assert rule.stall_at is not None
        client.sendall(head + body[: max(0, rule.stall_at - start)])
        time.sleep(rule.stall_s)
        return False


def _read_message(reader: Any, is_response: bool, method: str = "") -> tuple | None:
    """(head bytes, body bytes, method, path, status) of one HTTP/1.1 message, or None at EOF."""
    lines = []
    while True:
        line = reader.readline()
        if not line:
            return None
        lines.append(line)
        if line in (b"\r\n", b"\n"):
            break
    head = b"".join(lines)
    first = lines[0].decode("latin-1").split()
    headers = {}
    for line in lines[1:-1]:
        key, _, value = line.decode("latin-1").partition(":")
        headers[key.strip().lower()] = value.strip()
    body = b""
    status = int(first[1]) if is_response else 0
    no_body = is_response and (method == "HEAD" or status in (204, 304) or status < 200)
    if not no_body:
        if "content-length" in headers:
            body = reader.read(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size_line = reader.readline()
                chunks.append(size_line)
                size = int(size_line.split(b";")[0], 16)
                data = reader.read(size + 2)
                chunks.append(data)
                if size == 0:
                    break
            body = b"".join(chunks)
    req_method = "" if is_response else first[0]
    path = "" if is_response else first[1]
    return head, body, req_method, path, status
