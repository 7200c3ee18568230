"""Where labeled shards live: ``OUTPUT/<dataset>/gen-<checkpoint id>/part-<k>.parquet``.

One folder per (dataset, generation). A generation is the set of shards written by one
checkpoint; its ``_plan.json`` fixes what the shards mean (source, resolution, threshold,
thickness, checkpoint, block size, hash of the planned ids or of the tars' names, sizes and
ETags) and ``_SUCCESS.json`` appears when every block is written. ``_lease.json`` names the run
writing it (``directsam.labeling.lease``). A newer checkpoint writes a new ``gen-*``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from directsam.data.sources import fs

PLAN_FILE = "_plan.json"
SUCCESS_FILE = "_SUCCESS.json"
LEASE_FILE = "_lease.json"
GEN_PREFIX = "gen-"


def generation_name(checkpoint_sha: str) -> str:
    """``gen-<sha>`` with characters unsafe in paths replaced (``scratch:b0:0`` -> ``scratch-b0-0``)."""
    return GEN_PREFIX + re.sub(r"[^A-Za-z0-9._-]+", "-", checkpoint_sha).strip("-")


def part_name(block: str | int) -> str:
    """Deterministic shard file name of block ``block`` (``part-000042.parquet``,
    ``part-sa_000042-00003.parquet``)."""
    key = f"{block:06d}" if isinstance(block, int) else block
    return f"part-{key}.parquet"


def part_key(uri: str) -> str:
    """Inverse of :func:`part_name` on a shard URI or file name."""
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    return name[len("part-") : -len(".parquet")]


def generation_dir(output: str, dataset: str, checkpoint_sha: str) -> str:
    return fs.join(output, dataset, generation_name(checkpoint_sha))


def read_json(uri: str) -> dict[str, Any] | None:
    """The JSON object at ``uri``, or None when the file does not exist."""
    if not fs.is_file(uri):
        return None
    return json.loads(fs.read_uri(uri))


def write_json_atomic(uri: str, data: dict[str, Any]) -> None:
    """Write JSON to a hidden temp name, then rename (atomic on POSIX, a copy on object stores)."""
    from directsam.labeling.writer import atomic_write_bytes

    atomic_write_bytes(
        uri, (json.dumps(data, indent=2, sort_keys=True, default=str) + "\n").encode()
    )


def find_generations(root: str) -> list[str]:
    """Every generation folder under ``root`` (a generation, a dataset folder, or an output root).

    A generation folder is one holding ``_plan.json``; the search goes two levels down.
    """
    if fs.is_file(fs.join(root, PLAN_FILE)):
        return [root]
    found = []
    for child in fs.list_dirs(root):
        if fs.is_file(fs.join(child, PLAN_FILE)):
            found.append(child)
            continue
        found.extend(g for g in fs.list_dirs(child) if fs.is_file(fs.join(g, PLAN_FILE)))
    return sorted(found)


def part_files(generation: str) -> list[str]:
    """The finished shard files of a generation, in block order."""
    return [
        f.uri
        for f in fs.list_files(generation, (".parquet",), recursive=False)
        if f.rel.startswith("part-")
    ]
