"""Where labeled shards live: ``OUTPUT/<dataset>/gen-<checkpoint id>/part-<block key>.parquet``.

One folder per (dataset, generation). A generation is the set of shards written by one
checkpoint; its ``_plan.json`` fixes what the shards mean (source, resolution, threshold,
thickness, checkpoint, block size, hash of the planned ids or of the tars' names, sizes and
ETags) and ``_SUCCESS.json`` appears when every block is written. ``_lease.json`` names the run
writing it (``directsam.labeling.lease``). A newer checkpoint writes a new ``gen-*``.

A block is what one shard holds; its key names the file. Listed sources: block ``k`` of the
sorted ids, key ``000042`` (:func:`listed_key`). Tar sources: chunk ``c`` of tar ``T``, key
``sa_000042-00003`` (:func:`chunk_key`). Every file here is written with
:func:`directsam.atomic.write_atomic`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from directsam.atomic import remove_temp_files, write_atomic
from directsam.data.sources import fs

PLAN_FILE = "_plan.json"
SUCCESS_FILE = "_SUCCESS.json"
LEASE_FILE = "_lease.json"
GEN_PREFIX = "gen-"


# ----------------------------------------------------------------------------- names


def generation_name(checkpoint_sha: str) -> str:
    """``gen-<sha>`` with characters unsafe in paths replaced (``scratch:b0:0`` -> ``scratch-b0-0``)."""
    return GEN_PREFIX + re.sub(r"[^A-Za-z0-9._-]+", "-", checkpoint_sha).strip("-")


def generation_dir(output: str, dataset: str, checkpoint_sha: str) -> str:
    return fs.join(output, dataset, generation_name(checkpoint_sha))


def listed_key(block: int) -> str:
    """Key of block ``block`` of a sorted listing: ``42`` -> ``"000042"``."""
    return f"{block:06d}"


def chunk_key(unit: str, chunk: int) -> str:
    """Key of chunk ``chunk`` of tar unit ``unit``: ``("sa_000042", 3)`` -> ``"sa_000042-00003"``."""
    return f"{unit}-{chunk:05d}"


def parse_chunk_key(key: str) -> tuple[str, int]:
    """Inverse of :func:`chunk_key`."""
    unit, _, chunk = key.rpartition("-")
    return unit, int(chunk)


def part_name(block: str | int) -> str:
    """Deterministic shard file name of block ``block`` (a key, or a listed block's index):
    ``part-000042.parquet``, ``part-sa_000042-00003.parquet``."""
    key = listed_key(block) if isinstance(block, int) else block
    return f"part-{key}.parquet"


def part_key(uri: str) -> str:
    """Inverse of :func:`part_name` on a shard URI or file name."""
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    return name[len("part-") : -len(".parquet")]


# ----------------------------------------------------------------------------- files


def read_json(uri: str) -> dict[str, Any] | None:
    """The JSON object at ``uri``, or None when the file does not exist."""
    if not fs.is_file(uri):
        return None
    return json.loads(fs.read_uri(uri))


def write_file(uri: str, data: bytes) -> None:
    """Write ``data`` to a local path or URI atomically (:func:`directsam.atomic.write_atomic`
    on the URI's filesystem)."""
    filesystem, path, _ = fs.resolve(uri)
    write_atomic(path, data, filesystem=filesystem)


def write_json_atomic(uri: str, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON to ``uri`` atomically."""
    write_file(uri, (json.dumps(data, indent=2, sort_keys=True, default=str) + "\n").encode())


def clean_temp_files(generation: str) -> int:
    """Remove temp files left by an interrupted run (one writer per generation at a time)."""
    filesystem, path, _ = fs.resolve(generation)
    return remove_temp_files(path, filesystem=filesystem)


# ----------------------------------------------------------------------------- discovery


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


def resolve_generation(input: str) -> str:
    """The one generation folder under ``input`` (else a ValueError naming the candidates)."""
    gens = find_generations(input)
    if len(gens) != 1:
        what = ", ".join(gens) if gens else "none"
        raise ValueError(
            f"--input {input!r}: expected exactly one shard generation (a folder with _plan.json), "
            f"found {what}; point --input at one gen-* folder"
        )
    return gens[0]


def generation_plan(input: str) -> dict[str, Any]:
    """The ``_plan.json`` of the generation at ``input`` (resolution, thickness, checkpoint...)."""
    plan = read_json(fs.join(resolve_generation(input), PLAN_FILE))
    assert plan is not None
    return plan


def select_generations(
    shards: str, checkpoint: str | None = None, allow_incomplete: bool = False
) -> list[str]:
    """One generation folder per dataset under ``shards``: what stage 3 reads.

    Args:
        shards: an output root, a dataset folder or one generation folder.
        checkpoint: spec or ``checkpoint_sha`` of the generation to read; None when every
            dataset has exactly one generation.
        allow_incomplete: accept generations without ``_SUCCESS.json`` (interrupted runs).

    Raises:
        ValueError: no generation, an ambiguous choice, a dataset without the requested
            checkpoint, or an incomplete generation.
    """
    by_dataset: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for gen in find_generations(shards):
        plan = read_json(fs.join(gen, PLAN_FILE)) or {}
        by_dataset.setdefault(plan.get("dataset", gen), []).append((gen, plan))
    if not by_dataset:
        raise ValueError(f"{shards!r}: no labeled shard generation (no _plan.json) found")
    chosen = []
    for dataset, gens in sorted(by_dataset.items()):
        if checkpoint is not None:
            gens = [
                g
                for g in gens
                if checkpoint in (g[1].get("checkpoint"), g[1].get("checkpoint_sha"))
            ]
        if len(gens) != 1:
            names = ", ".join(g[0] for g in by_dataset[dataset])
            why = "none matches" if not gens else "several match"
            raise ValueError(
                f"dataset {dataset!r}: {why} checkpoint={checkpoint!r} among generations {names}; "
                "pass the checkpoint spec or sha of one"
            )
        gen = gens[0][0]
        if not allow_incomplete and not fs.is_file(fs.join(gen, SUCCESS_FILE)):
            raise ValueError(f"{gen} is incomplete (no {SUCCESS_FILE}); re-run its label job")
        chosen.append(gen)
    return chosen


def part_files(generation: str) -> list[str]:
    """The finished shard files of a generation, in block order."""
    return [
        f.uri
        for f in fs.list_files(generation, (".parquet",), recursive=False)
        if f.rel.startswith("part-")
    ]
