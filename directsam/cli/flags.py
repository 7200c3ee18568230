"""The source flags every command shares: ``--source``, ``--input``, ``--dataset``, ...

Each flag is a shorthand for a ``source.*`` config key (:class:`SourceSpec` field); a command
picks the fields it offers and may name the input flag differently (training's ``--data``).
Flags default to None ("not given"), so the config stays the single source of truth:
:func:`source_shorthands` maps them into the config (``directsam.config.config_from_args``),
:func:`spec_from_args` into a spec for commands without a config (``segment``).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from dataclasses import fields, replace
from typing import Any

from directsam.data.decode import LABEL_MAP_MODES
from directsam.data.sources.spec import FLAGS, SOURCE_TYPES, SPLITS, SourceSpec

ALL_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(SourceSpec))

HELP: dict[str, str] = {
    "type": f"source type: {' | '.join(SOURCE_TYPES)}",
    "input": "input path or URI; sa1b: a .tar, a folder of tars, an extracted folder or a root"
    " of them",
    "dataset": "dataset name (default: the input's base name)",
    "annotations": "COCO JSON (coco; default: the one *.json in the input)",
    "labels": "label-map folder (labelmap; default INPUT/labels beside INPUT/images)",
    "mode": f"label-map mode: {' | '.join(LABEL_MAP_MODES)}",
    "split": f"{' | '.join(SPLITS)} (sa1b/shards: the last 1%% of sorted ids is val)",
    "num_samples": "first N images in sorted-id order (with --seed: a seeded random subset)",
    "seed": "seed of the --num-samples subset",
    "registry": "dataset registry YAML consulted when --dataset names an entry",
}


def flag_of(field: str, input_flag: str = "--input") -> str:
    """The flag of a :class:`SourceSpec` field (``input`` -> ``input_flag``)."""
    return input_flag if field == "input" else FLAGS[field]


def _dest(flag: str) -> str:
    return flag.removeprefix("--").replace("-", "_")


def source_shorthands(
    offered: Iterable[str] = ALL_FIELDS, input_flag: str = "--input"
) -> dict[str, str]:
    """``{argparse dest: "source.<field>"}`` of the offered fields (``config_from_args``)."""
    return {_dest(flag_of(f, input_flag)): f"source.{f}" for f in offered}


def add_source_args(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    offered: Iterable[str] = ALL_FIELDS,
    *,
    input_flag: str = "--input",
    typed: bool = True,
    notes: Mapping[str, str] | None = None,
    config: bool = True,
) -> None:
    """Add the flags of the ``offered`` :class:`SourceSpec` fields to ``parser``.

    Args:
        parser: a parser or an argument group.
        offered: field names, in the order the flags are listed.
        input_flag: the flag of ``input``.
        typed: argparse checks ``--source`` choices and integers; False leaves every value a
            string for the config loader to convert (its messages name the flag).
        notes: text appended to a field's help (``{"type": "default images"}``).
        config: the flags set ``source.*`` config keys (named in the help) and ``--dataset``
            consults the registry; False for a command without a config (``segment``).
    """
    notes = dict(notes or {})
    if config:
        notes.setdefault("dataset", "a registry name fills the source keys not given")
    for field in offered:
        flag = flag_of(field, input_flag)
        extra: dict[str, Any] = {}
        if typed and field == "type":
            extra["choices"] = SOURCE_TYPES
        if typed and field in ("num_samples", "seed"):
            extra["type"] = int
        note = f"; {notes[field]}" if field in notes else ""
        key = f" [source.{field}]" if config else ""
        parser.add_argument(
            flag, dest=_dest(flag), default=None, help=f"{HELP[field]}{note}{key}", **extra
        )


def spec_from_args(
    args: argparse.Namespace,
    base: SourceSpec,
    offered: Iterable[str] = ALL_FIELDS,
    input_flag: str = "--input",
) -> SourceSpec:
    """``base`` with the offered flags that were given (commands without a config)."""
    given = {f: getattr(args, _dest(flag_of(f, input_flag)), None) for f in offered}
    return replace(base, **{f: v for f, v in given.items() if v is not None})
