"""Requests per image and MB/s of reading SA-1B tars from an S3-protocol server (moto, loopback).

Generates an SA-1B-format sample as tars (GNU format as ``make-sample`` writes them, and the
same members rewritten as PAX), uploads it to a local S3 server that logs every request, and
runs each variant in its own process against it:

- ``label``: a full labeling pass (``run_labeling``: ``scratch:tiny`` at 64 px on CPU, blocks
  of 50, local Ray with 2 CPUs), with the code at ``--before`` (endpoint via
  ``AWS_ENDPOINT_URL``, the only way it reaches workers there) and with this code (endpoint in
  the URI query);
- ``read``: the source rows only (no decode, no model): the old path (``list_source`` +
  ``read_items``: tar headers listed on the driver, one ranged read per member), this code's
  ``read_source`` (tar datasource: one streamed GET per tar), and
  ``ray.data.read_webdataset(decoder=None)`` over pyarrow's ``S3FileSystem``;
- ``stream``: the two tar readers alone, one process, no Ray: this code's ``read_unit`` and
  ``tarfile`` over a pyarrow S3 input stream with a 32 MiB buffer (``read_webdataset``'s way).

Figures per variant: requests by method, requests per image, and MB/s (tar bytes / wall time
of the pass, Ray start excluded). One JSON line per variant goes to stdout (and ``--output``).

    python benchmarks/tar_requests.py --before /tmp/main-checkout --output /tmp/req.jsonl
    python benchmarks/tar_requests.py --images 2000 --per-tar 2000 --size 32 32 \\
        --variants read-after read-webdataset --formats gnu        # one big tar
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VARIANTS = (
    "label-before",
    "label-after",
    "read-before",
    "read-after",
    "read-webdataset",
    "stream-after",
    "stream-webdataset",
)


def _pax_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(src) as tin, tarfile.open(dst, "w", format=tarfile.PAX_FORMAT) as tout:
        for info in tin:
            data = tin.extractfile(info).read()
            info.pax_headers = {"comment": "directsam benchmark"}  # forces a PAX header
            tout.addfile(info, io.BytesIO(data))


# ----------------------------------------------------------------------------- child side


def _stream(args: argparse.Namespace, code: str) -> dict:
    """One process, no Ray: this code's tar reader vs ``tarfile`` over a pyarrow S3 stream (what
    ``read_webdataset`` runs in each read task), each over every tar in turn."""
    import tarfile as tf

    import pyarrow.fs as pafs

    rows = nbytes = 0
    start = time.perf_counter()
    if code == "after":
        from directsam.data.sources import SourceSpec, plan_source
        from directsam.data.sources.tarstream import read_unit

        plan = plan_source(SourceSpec("sa1b", args.uri))
        for unit in plan.units():
            for batch in read_unit(unit, "bench", plan.store, 1 << 30, batch_rows=64):
                rows += len(batch)
                nbytes += sum(len(r["image_bytes"] or b"") for r in batch)
    else:
        endpoint = os.environ["BENCH_ENDPOINT"].split("://", 1)[1]
        s3 = pafs.S3FileSystem(endpoint_override=endpoint, scheme="http")
        prefix = args.uri.split("://", 1)[1]
        for info in s3.get_file_info(pafs.FileSelector(prefix)):
            with s3.open_input_stream(info.path, buffer_size=32 << 20) as f:
                with tf.open(fileobj=f, mode="r|") as tar:
                    for member in tar:
                        data = tar.extractfile(member).read()
                        if member.name.endswith(".jpg"):
                            rows += 1
                            nbytes += len(data)
    return {"rows": rows, "failed": 0, "wall_s": round(time.perf_counter() - start, 3)}


def _child(args: argparse.Namespace) -> dict:
    kind, code = args.variant.split("-", 1)
    if kind == "stream":
        return _stream(args, code)
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False
    start = time.perf_counter()
    if kind == "label":
        from directsam.labeling.config import LabelConfig
        from directsam.labeling.pipeline import run_labeling

        cfg = LabelConfig(output=tempfile.mkdtemp(prefix="tar-req-"), thickness=3)
        cfg.source.type, cfg.source.input, cfg.source.dataset = "sa1b", args.uri, "bench"
        cfg.model.checkpoint, cfg.model.resolution = "scratch:tiny", 64
        cfg.model.device, cfg.model.dtype = "cpu", "fp32"
        cfg.compute.batch_size = cfg.compute.decode_batch_size = 8
        cfg.compute.rows_per_shard = 50
        cfg.compute.progress_interval_s = 1e9
        cfg.tracking.enabled = False
        start = time.perf_counter()
        summary = run_labeling(cfg, log=lambda *_: None)
        rows, failed = summary["num_rows"], summary["num_failed"]
    else:
        if code == "before":
            from directsam.data.sources import SourceSpec, items_dataset, list_source, read_items

            ds = items_dataset(list_source(SourceSpec("sa1b", args.uri))).map_batches(
                read_items, batch_size=16
            )
        elif code == "after":
            from directsam.data.sources import SourceSpec, read_source

            ds = read_source(SourceSpec("sa1b", args.uri))
        else:
            import pyarrow.fs as pafs

            endpoint = os.environ["BENCH_ENDPOINT"].split("://", 1)[1]
            s3 = pafs.S3FileSystem(endpoint_override=endpoint, scheme="http")
            prefix = args.uri.split("://", 1)[1]
            paths = [i.path for i in s3.get_file_info(pafs.FileSelector(prefix))]
            ds = ray.data.read_webdataset(
                paths, filesystem=s3, decoder=None, suffixes=["jpg", "json"]
            )
        rows = failed = 0
        for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            rows += batch.num_rows
            if "error" in batch.column_names:
                failed += batch.num_rows - batch["error"].null_count
    wall = time.perf_counter() - start
    ray.shutdown()
    return {"rows": rows, "failed": failed, "wall_s": round(wall, 3)}


# ----------------------------------------------------------------------------- parent side


def _run_variant(server, variant: str, fmt: str, args: argparse.Namespace, tar_bytes: int):
    before = variant.endswith("-before")
    code = str(Path(args.before).resolve()) if before else str(REPO)
    env = {**os.environ, **server.env, "PYTHONPATH": code, "BENCH_ENDPOINT": server.endpoint}
    env["RAY_AUTH_MODE"] = "disabled"
    uri = f"s3://bench/{fmt}"
    if before or variant.endswith("-webdataset"):
        env["AWS_ENDPOINT_URL"] = server.endpoint
    else:
        uri = server.query(uri)
    server.reset()
    cmd = [sys.executable, __file__, "--child", variant, "--uri", uri]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"{variant} failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    log = server.requests()
    methods = Counter(r["method"] for r in log)
    out.update(
        variant=variant,
        format=fmt,
        images=args.images,
        images_per_tar=args.per_tar,
        tar_mb=round(tar_bytes / 1e6, 3),
        requests=len(log),
        by_method=dict(methods),
        requests_per_image=round(len(log) / args.images, 4),
        mb_per_s=round(tar_bytes / 1e6 / out["wall_s"], 3) if out["wall_s"] else None,
        load_avg=[round(x, 2) for x in os.getloadavg()],
        machine=platform.node(),
    )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--per-tar", type=int, default=50)
    p.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"))
    p.add_argument("--formats", nargs="+", default=["gnu", "pax"], choices=("gnu", "pax"))
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--before", default=None, help="repository root of the code to compare")
    p.add_argument("--output", default=None, help="append the JSON lines to this file")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--uri", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        args.variant = args.child
        print(json.dumps(_child(args)))
        return 0
    if any(v.endswith("-before") for v in args.variants) and not args.before:
        p.error("--before is required for the *-before variants")
    sys.path.insert(0, str(REPO))
    from directsam.data.sample import make_sample
    from tests.data.sources.s3server import S3Server

    work = Path(tempfile.mkdtemp(prefix="tar-req-"))
    h, w = args.size or (None, None)
    root = make_sample(work, args.images, seed=0, height=h, width=w, images_per_tar=args.per_tar)
    for tar in sorted((root / "tars").glob("*.tar")):
        _pax_copy(tar, root / "pax" / tar.name)
    server = S3Server()
    try:
        sizes = {}
        for fmt, folder in (("gnu", root / "tars"), ("pax", root / "pax")):
            server.upload(folder, "bench", fmt)
            sizes[fmt] = sum(t.stat().st_size for t in folder.glob("*.tar"))
        for fmt in args.formats:
            for variant in args.variants:
                line = json.dumps(_run_variant(server, variant, fmt, args, sizes[fmt]))
                print(line, flush=True)
                if args.output:
                    with open(args.output, "a") as f:
                        f.write(line + "\n")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
