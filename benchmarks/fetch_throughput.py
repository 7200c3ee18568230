"""Fetch throughput and memory on loopback: directsam.fetch vs a bare urllib copy loop.

Serves ``--files`` generated files of ``--size-mb`` MB from a temp dir on 127.0.0.1 and fetches
them (no Ray: threads), reporting MB/s, the driver's peak RSS growth (streaming means it stays
near one chunk per file in flight, not the file size), and the cost of re-runs with
``verify=size`` (stat only) and ``verify=checksum`` (re-hash). Loopback has no network limit,
so this measures our per-byte overhead (SHA-256, writes, fsync), not a CDN.

    .venv/bin/python benchmarks/fetch_throughput.py --files 2 --size-mb 256 --parallel 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from directsam.fetch.links import parse_links  # noqa: E402
from directsam.fetch.runner import FetchOptions, fetch_links  # noqa: E402


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=2)
    ap.add_argument("--size-mb", type=int, default=256)
    ap.add_argument("--parallel", type=int, default=2)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fetch_bench_"))
    srv = tmp / "srv"
    srv.mkdir()
    names = [f"sa_{i:06d}.tar" for i in range(args.files)]
    for name in names:
        with open(srv / name, "wb") as f:
            for _ in range(args.size_mb):
                f.write(os.urandom(1 << 20))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(srv)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    total_mb = args.files * args.size_mb * (1 << 20) / 1e6
    try:
        # Baseline: plain urllib -> file copy, sequential, no hashing or verification.
        t0 = time.perf_counter()
        for name in names:
            with urllib.request.urlopen(f"{base}/{name}") as r, open(tmp / "bare", "wb") as f:
                shutil.copyfileobj(r, f, 1 << 20)
        bare_s = time.perf_counter() - t0
        (tmp / "bare").unlink()

        entries = parse_links("\n".join(f"{n}\t{base}/{n}" for n in names))
        rss0 = _rss_mb()
        runs = {}
        for label, parallel, verify in (
            ("fetch_p1", 1, "size"),
            (f"fetch_p{args.parallel}", args.parallel, "size"),
            ("rerun_verify_size", args.parallel, "size"),
            ("rerun_verify_checksum", args.parallel, "checksum"),
        ):
            if label.startswith("fetch"):
                shutil.rmtree(tmp / "out", ignore_errors=True)
            opts = FetchOptions(parallel=parallel, use_ray=False, verify=verify)
            t0 = time.perf_counter()
            summary = fetch_links(entries, str(tmp / "out"), options=opts, log=lambda s: None)
            seconds = time.perf_counter() - t0
            assert not summary.failed, summary.failed
            runs[label] = {"seconds": round(seconds, 3)}
            if label.startswith("fetch"):  # re-runs download nothing: a rate is meaningless
                runs[label]["mb_per_s"] = round(total_mb / seconds, 1)
        peak_growth = _rss_mb() - rss0
    finally:
        httpd.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        json.dumps(
            {
                "bench": "fetch_throughput",
                "files": args.files,
                "size_mb_each": args.size_mb,
                "total_mb": round(total_mb, 1),
                "bare_urllib_sequential": {
                    "seconds": round(bare_s, 3),
                    "mb_per_s": round(total_mb / bare_s, 1),
                },
                **runs,
                "driver_peak_rss_growth_mb": round(peak_growth, 1),
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
