"""A real HTTP file server on 127.0.0.1 for fetch tests: Range requests and fault injection.

Serves in-memory ``{name: bytes}`` over ``http.server.ThreadingHTTPServer`` on an ephemeral
port. Each path can be given a :class:`Fault`: fail the first N requests (500/503, optional
Retry-After), cut the connection after K body bytes, ignore Range headers, or serve other
bytes than the real file. Every request is logged with its Range header, status and the body
bytes actually sent, so tests can assert "a Range request was made" or "nothing downloaded".
"""

from __future__ import annotations

import re
import threading
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Fault:
    fail_first: int = 0  # the next N requests get `fail_status`
    fail_status: int = 503
    retry_after: str | None = None
    cut_after: int | None = None  # send only K body bytes, then close the connection...
    cut_times: int = 1  # ...for this many requests
    ignore_range: bool = False  # always answer 200 with the whole body
    body: bytes | None = None  # serve these bytes instead of the file (consistent headers)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    range: str | None
    status: int
    body_bytes: int


class FileServer:
    """``with FileServer(files) as srv: srv.url("a.tar")``."""

    def __init__(self, files: dict[str, bytes] | None = None):
        self.files: dict[str, bytes] = dict(files or {})
        self.faults: dict[str, Fault] = {}
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def url(self, name: str, query: str = "") -> str:
        return f"http://127.0.0.1:{self.port}/{name}" + (f"?{query}" if query else "")

    def get_requests(self, name: str | None = None) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if name is None or r.path == name]

    def body_bytes(self) -> int:
        """Total body bytes sent by GET responses so far."""
        return sum(r.body_bytes for r in self.get_requests())

    def reset_log(self) -> None:
        with self._lock:
            self.requests.clear()

    def __enter__(self) -> FileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _handler_for(server: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def _log(self, status: int, sent: int) -> None:
            with server._lock:
                server.requests.append(
                    Request(self.command, self._name(), self.headers.get("Range"), status, sent)
                )

        def _name(self) -> str:
            return urllib.parse.unquote(urllib.parse.urlsplit(self.path).path.lstrip("/"))

        def do_GET(self) -> None:
            name = self._name()
            if name not in server.files:
                self._status_only(404)
                return
            fault = server.faults.get(name, Fault())
            with server._lock:
                failing = fault.fail_first > 0
                if failing:
                    fault.fail_first -= 1
            if failing:
                extra = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                self._status_only(fault.fail_status, extra)
                return
            data = fault.body if fault.body is not None else server.files[name]
            status, start, end = 200, 0, len(data)
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range") or "")
            if m and not fault.ignore_range:
                start = int(m.group(1))
                if start >= len(data):
                    self._status_only(416, {"Content-Range": f"bytes */{len(data)}"})
                    return
                end = min(len(data), int(m.group(2)) + 1) if m.group(2) else len(data)
                status = 206
            body = data[start:end]
            self.send_response(status)
            self.send_header("Content-Type", "application/x-tar")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
            self.end_headers()
            with server._lock:
                cut = fault.cut_after is not None and fault.cut_times > 0
                if cut:
                    fault.cut_times -= 1
            if cut:
                body = body[: fault.cut_after]
                self.close_connection = True  # the client sees EOF before Content-Length
            self._log(status, len(body))  # before sending: the client may assert right after
            self.wfile.write(body)
            self.wfile.flush()

        def _status_only(self, status: int, headers: dict[str, str] | None = None) -> None:
            self._log(status, 0)
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler
