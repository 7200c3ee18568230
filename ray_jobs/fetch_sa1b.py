"""Fetch SA-1B shards on a Ray cluster: one task per shard, resumable, verified, with a manifest.

Same flags as ``directsam fetch-sa1b``. Submit with, for example::

    ray job submit --working-dir . -- python ray_jobs/fetch_sa1b.py \
        --links sa1b_links.txt --output s3://bucket/sa1b --shards 0-99 --parallel 32

A local ``--output`` keeps every task on the driver's node unless ``--shared-storage``.
Locally: ``python ray_jobs/fetch_sa1b.py --smoke-test`` (two generated shards served on
127.0.0.1, fetched twice: the second run downloads nothing).
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import tarfile
import tempfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# Runs from a `--working-dir` upload without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from directsam.cli.fetch import add_fetch_sa1b_args, run_fetch  # noqa: E402
from directsam.fetch.links import read_links, select_sa1b  # noqa: E402


def smoke_test(args: argparse.Namespace) -> int:
    """Serve two tiny shards from a temp dir on 127.0.0.1 and fetch them twice."""
    tmp = Path(tempfile.mkdtemp(prefix="fetch_sa1b_smoke_"))
    (tmp / "srv").mkdir()
    for i in range(2):
        with tarfile.open(tmp / "srv" / f"sa_{i:06d}.tar", "w") as tf:
            data = bytes(range(256)) * (40 + i)
            info = tarfile.TarInfo(f"./sa_{i + 1}.jpg")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    handler = partial(SimpleHTTPRequestHandler, directory=str(tmp / "srv"))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    port = httpd.server_address[1]
    lines = [f"sa_{i:06d}.tar\thttp://127.0.0.1:{port}/sa_{i:06d}.tar" for i in range(2)]
    (tmp / "links.txt").write_text("file_name\tcdn_link\n" + "\n".join(lines) + "\n")
    args.links, args.output, args.extract = str(tmp / "links.txt"), str(tmp / "out"), True
    try:
        codes = [run_fetch(args, read_links(args.links)) for _ in range(2)]
    finally:
        httpd.shutdown()
    ok = (tmp / "out" / "sa_000001" / "sa_2.jpg").is_file()
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"smoke test: exit codes {codes}, extracted layout present: {ok}")
    return 0 if codes == [0, 0] and ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_fetch_sa1b_args(parser, required=False)
    parser.add_argument("--smoke-test", action="store_true", help="local end-to-end check")
    args = parser.parse_args(argv)
    if args.smoke_test:
        return smoke_test(args)
    if not args.links or not args.output:
        parser.error("--links and --output are required (or --smoke-test)")
    return run_fetch(args, select_sa1b(read_links(args.links), args.shards))


if __name__ == "__main__":
    sys.exit(main())
