"""Driver cost of planning SA-1B: wall time and peak RSS for N tars x M images, no data read.

The object store is replaced by a synthetic listing, so only the driver's own work is timed:

- ``after`` (this code): ``plan_source`` on a prefix whose LIST returns N tar objects (name,
  size, ETag), then the labeling work (``make_work``: units, plan fingerprint, the
  ``_plan.json`` record) and the Ray read tasks of the tar datasource (one per tar);
- ``before`` (the code at ``--code``, e.g. a checkout of main before issue 14): the same call
  chain as its ``run_labeling``: ``list_source`` with each tar's header index replaced by a
  synthetic one of 2 x M members (``fs.tar_index``, which on S3 costs 2 requests per member),
  then ``plan_blocks`` and the ``from_items`` rows of every block.

``--kind folders`` plans M x N images of extracted folders (one LIST per folder) instead:
before, a ``SourceItem`` per image; after, one Arrow table.

Each measurement runs in a fresh child process (peak RSS = ``ru_maxrss`` of that child).

    python benchmarks/plan_driver.py --tars 1000 --images-per-tar 11000          # after
    python benchmarks/plan_driver.py --tars 100 --images-per-tar 11000 \\
        --code /tmp/main-checkout --label before
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _members(images: int) -> list[tuple[int, str, tuple[int, int]]]:
    """(image number, extension, (data offset, size)) of an SA-1B-like tar's members."""
    out, offset = [], 0
    for n in range(1, images + 1):
        for ext, size in (("jpg", 500_000), ("json", 400_000)):
            out.append((n, ext, (offset + 512, size)))
            offset += 512 + size
    return out


def _before_tars(root: str, tars: int, images: int) -> dict:
    from directsam.data.sources import fs, listing
    from directsam.labeling.writer import ids_sha256, plan_blocks

    base = _members(images)
    uris = [f"{root}/sa_{k:06d}.tar" for k in range(tars)]

    def index(uri: str) -> dict[str, tuple[int, int]]:  # distinct ids per tar, as in SA-1B
        first = int(uri.rsplit("sa_", 1)[1][:6]) * images
        return {f"sa_{first + n}.{ext}": where for n, ext, where in base}

    fs.tar_index = index
    listing.sa1b_layout = lambda input: ("tars", uris)
    t0 = time.perf_counter()
    items = listing._dedupe_ids(listing.list_sa1b(root, "sa1b"))
    t1 = time.perf_counter()
    blocks = plan_blocks([i.image_id for i in items], 1000)
    ids_sha256([i.image_id for i in items])
    by_id = {i.image_id: i for i in items}
    rows = [dict(by_id[i].to_row(), block=b.index) for b in blocks for i in b.image_ids]
    t2 = time.perf_counter()
    return {"images": len(rows), "list_s": t1 - t0, "plan_s": t2 - t1, "units": len(blocks)}


def _after_tars(root: str, tars: int, images: int) -> dict:
    from directsam.data.sources import SourceSpec, objects, plan_source, sa1b
    from directsam.data.sources.datasource import TarDatasource
    from directsam.labeling.units import make_work

    infos = [
        objects.ObjectInfo(f"{root}/sa_{k:06d}.tar", images * 901_024 + 10_240, f'"etag{k}"')
        for k in range(tars)
    ]
    sa1b.list_objects = lambda prefix, suffix, store: list(infos)
    t0 = time.perf_counter()
    p = plan_source(SourceSpec("sa1b", root))
    t1 = time.perf_counter()
    work = make_work(p, 1000)
    json.dumps(work.plan_keys)
    source = TarDatasource(p.units(), p.dataset, p.store, chunk_rows=1000, bookkeeping=True)
    tasks = source.get_read_tasks(tars)
    t2 = time.perf_counter()
    return {"images": tars * images, "list_s": t1 - t0, "plan_s": t2 - t1, "units": len(tasks)}


def _lister(images_total: int, folders: int):
    """A ``fs.list_files`` stand-in: each folder's entries made on demand, as a LIST would."""
    from directsam.data.sources.fs import FileEntry

    per = images_total // folders

    def list_files(uri: str, extensions=None, recursive: bool = True) -> list:
        f = int(uri.rsplit("sa_", 1)[1])
        return [
            FileEntry(f"{uri}/sa_{n}.{ext}", f"sa_{n}.{ext}", 1000)
            for n in range(f * per + 1, (f + 1) * per + 1)
            for ext in ("jpg", "json")
        ]

    return list_files, [f"/d/sa_{f:06d}" for f in range(folders)]


def _folders(root: str, tars: int, images: int, after: bool) -> dict:
    from directsam.data.sources import fs, listing

    fs.list_files, folders = _lister(tars * images, tars)
    t0 = time.perf_counter()
    if after:
        from directsam.data.sources import SourceSpec, plan_source, sa1b
        from directsam.labeling.units import make_work

        sa1b.sa1b_layout = lambda input, store: ("folders", folders)
        p = plan_source(SourceSpec("sa1b", root))
        t1 = time.perf_counter()
        work = make_work(p, 1000)
        work.pending = list(work.keys)
        n = p.items.num_rows
        from directsam.labeling.units import ListedWork

        assert isinstance(work, ListedWork)
    else:
        from directsam.labeling.writer import plan_blocks

        listing.sa1b_layout = lambda input: ("folders", folders)
        items = listing._dedupe_ids(listing.list_sa1b(root, "sa1b"))
        t1 = time.perf_counter()
        blocks = plan_blocks([i.image_id for i in items], 1000)
        by_id = {i.image_id: i for i in items}
        rows = [dict(by_id[i].to_row(), block=b.index) for b in blocks for i in b.image_ids]
        n = len(rows)
    t2 = time.perf_counter()
    return {"images": n, "list_s": t1 - t0, "plan_s": t2 - t1}


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        line = next(x for x in f if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def child(args: argparse.Namespace) -> None:
    # Import everything first, so that the RSS growth below is the plan's, not the libraries'.
    import pyarrow  # noqa: F401

    import directsam.data.sources  # noqa: F401
    import directsam.labeling.writer  # noqa: F401

    if args.label != "before":
        import directsam.data.sources.datasource  # noqa: F401 - imports Ray Data
        import directsam.labeling.units  # noqa: F401
    root = tempfile.mkdtemp(prefix="plan-bench-")
    rss0 = _rss_mb()
    start = time.perf_counter()
    if args.kind == "tars":
        fn = _after_tars if args.label != "before" else _before_tars
        out = fn(root, args.tars, args.images_per_tar)
    else:
        out = _folders(root, args.tars, args.images_per_tar, args.label != "before")
    out["wall_s"] = round(time.perf_counter() - start, 4)
    out["list_s"], out["plan_s"] = round(out["list_s"], 4), round(out["plan_s"], 4)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["rss_after_imports_mb"], out["peak_rss_mb"] = round(rss0, 1), round(peak, 1)
    out["plan_peak_mb"] = round(peak - rss0, 1)  # what planning added on top of the imports
    print(json.dumps(out))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tars", type=int, default=1000)
    p.add_argument("--images-per-tar", type=int, default=11000)
    p.add_argument("--kind", choices=("tars", "folders"), default="tars")
    p.add_argument("--code", default=None, help="repository root whose directsam to run")
    p.add_argument("--label", default="after", help="before | after (which code's API)")
    p.add_argument("--output", default=None, help="append the JSON line to this file")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args)
        return 0
    code = str(Path(args.code or Path(__file__).resolve().parents[1]).resolve())
    env = {**os.environ, "PYTHONPATH": code}
    cmd = [sys.executable, __file__, "--child", *(argv if argv is not None else sys.argv[1:])]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        return proc.returncode
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result.update(
        label=args.label,
        kind=args.kind,
        tars=args.tars,
        images_per_tar=args.images_per_tar,
        code=code,
        machine=platform.node(),
        load_avg=os.getloadavg(),
    )
    line = json.dumps(result)
    print(line)
    if args.output:
        with open(args.output, "a") as f:
            f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
