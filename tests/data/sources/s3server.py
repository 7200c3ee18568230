"""A real S3-protocol server for tests and benchmarks: moto's server on 127.0.0.1, own process.

``S3Server()`` starts ``python s3server.py`` (moto's WSGI app under werkzeug on a free port)
and records every request the server receives (method, path, query, ``Range`` header), which
the tests read back through ``GET /__requests__`` (not itself recorded). Credentials are
moto's dummy ones (``S3Server.env``); nothing leaves the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
LOG_PATH = "/__requests__"


class S3Server:
    """moto's S3 server in a subprocess; ``endpoint`` is ``http://127.0.0.1:<port>``."""

    env = CREDENTIALS

    def __init__(self) -> None:
        env = {**os.environ, **CREDENTIALS}
        for key in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
            env.pop(key, None)
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve())],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            text=True,
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.strip().isdigit():
            self.proc.kill()
            raise RuntimeError(f"the S3 server did not start (got {line!r})")
        self.port = int(line)
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def query(self, uri: str) -> str:
        """``uri`` with this server as its endpoint (pyarrow's query spelling)."""
        return f"{uri}?endpoint_override=127.0.0.1:{self.port}&scheme=http"

    def requests(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(self.endpoint + LOG_PATH, timeout=10) as r:
            return json.loads(r.read())

    def reset(self) -> None:
        with urllib.request.urlopen(self.endpoint + LOG_PATH + "?reset=1", timeout=10):
            pass

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def upload(self, local: Path, bucket: str, prefix: str) -> list[str]:
        """Upload every file below ``local`` to ``s3://bucket/prefix/...``; returns the URIs."""
        client = self.client()
        try:
            client.create_bucket(Bucket=bucket)
        except client.exceptions.BucketAlreadyOwnedByYou:
            pass
        uris = []
        for path in sorted(p for p in local.rglob("*") if p.is_file()):
            key = f"{prefix}/{path.relative_to(local).as_posix()}"
            client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
            uris.append(f"s3://{bucket}/{key}")
        return uris

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def object_reads(log: list[dict[str, Any]], suffix: str = ".tar") -> list[dict[str, Any]]:
    """The GET requests of objects whose key ends with ``suffix`` (not listings)."""
    return [
        r
        for r in log
        if r["method"] == "GET" and r["path"].endswith(suffix) and "list-type" not in r["query"]
    ]


def _main() -> None:
    """Serve moto's S3 app on a free loopback port; print the port; log requests."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    app = DomainDispatcherApplication(create_backend_app)
    log: list[dict[str, Any]] = []
    lock = threading.Lock()

    def logged(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == LOG_PATH:
            with lock:
                body = json.dumps(log).encode()
                if "reset=1" in environ.get("QUERY_STRING", ""):
                    log.clear()
            start_response("200 OK", [("Content-Length", str(len(body)))])
            return [body]
        entry = {
            "method": environ["REQUEST_METHOD"],
            "path": environ.get("PATH_INFO", ""),
            "query": environ.get("QUERY_STRING", ""),
            "range": environ.get("HTTP_RANGE"),
        }
        with lock:
            log.append(entry)
        return app(environ, start_response)

    class Quiet(MotoRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass

    server = make_server("127.0.0.1", 0, logged, threaded=True, request_handler=Quiet)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    _main()
