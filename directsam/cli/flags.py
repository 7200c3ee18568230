"""The flag groups several commands share, each defined once: source, model, tokens, Ray
address, tracking, smoke test.

Flags of a job with a config (label, pretrain, self-train, evaluate, sweep) are shorthands for
config keys: they default to None ("not given") so the config dataclass stays the one source
of defaults, and their help names the key. Commands without a config (predict, segment,
export) take the model settings directly; an unset ``--threshold`` / ``--resolution`` means
the checkpoint's ``directsam.json``, else ``directsam.model.spec.DEFAULT_THRESHOLD`` /
``DEFAULT_RESOLUTION``; ``--device`` / ``--dtype`` default to the model config's defaults.

Source flags: each is a shorthand for a ``source.*`` config key (:class:`SourceSpec` field); a
command picks the fields it offers and may name the input flag differently (training's
``--data``). :func:`source_shorthands` maps them into the config
(``directsam.config.config_from_args``), :func:`spec_from_args` into a spec for commands
without a config (``segment``).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from dataclasses import fields, replace
from typing import Any

from directsam.data.decode import LABEL_MAP_MODES
from directsam.data.sources.spec import FLAGS, SOURCE_TYPES, SPLITS, SourceSpec
from directsam.labeling.config import DTYPES, ModelConfig
from directsam.model.spec import DEFAULT_RESOLUTION, DEFAULT_THRESHOLD

Parser = argparse.ArgumentParser | argparse._ArgumentGroup

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


# ------------------------------------------------------------------------------------ model

MODEL_HELP: dict[str, str] = {
    "checkpoint": "hub id, checkpoint directory, scratch:b0..b5 / scratch:tiny (random init), "
    "or models:/NAME/VERSION",
    "resolution": "model input side",
    "threshold": "boundary threshold in (0, 1)",
    "device": "auto | cpu | cuda | cuda:N",
    "dtype": "auto = bf16 on CUDA, fp32 on CPU",
    "allow_pickle": "accept a checkpoint that only has pytorch_model.bin (pickle) weights",
}
MODEL_FIELDS = ("checkpoint", "resolution", "threshold", "device", "dtype")


def add_model_args(
    parser: Parser,
    offered: Iterable[str] = MODEL_FIELDS,
    *,
    keys: Mapping[str, str] | None = None,
    helps: Mapping[str, str] | None = None,
    allow_pickle: bool = False,
) -> None:
    """Add the model flags of ``fields`` (and ``--allow-pickle``) to ``parser``.

    Args:
        offered: which of ``MODEL_FIELDS``, in the order listed in --help.
        keys: ``{field: config key}`` for a job with a config: every flag defaults to None
            and its help ends ``(key)``. None: a command without a config (``--checkpoint``
            required, ``--device``/``--dtype`` default to :class:`ModelConfig`'s, unset
            ``--threshold``/``--resolution`` mean the checkpoint's, else the defaults).
        helps: replaces a field's help text (a job whose flag means something narrower).
        allow_pickle: also add ``--allow-pickle`` (a ``store_true`` flag).
    """
    text = {**MODEL_HELP, **(helps or {})}
    fallback = {"threshold": DEFAULT_THRESHOLD, "resolution": DEFAULT_RESOLUTION}
    types = {"resolution": int, "threshold": float}
    for field in offered:
        flag = "--" + field.replace("_", "-")
        extra: dict[str, Any] = {"type": types[field]} if field in types else {}
        if keys is not None:
            extra.update(default=None, help=f"{text[field]} ({keys[field]})")
        elif field == "checkpoint":
            extra.update(required=True, help=text[field])
        elif field in fallback:
            note = f"default: the checkpoint's directsam.json, else {fallback[field]}"
            extra.update(default=None, help=f"{text[field]} ({note})")
        else:
            default = getattr(ModelConfig(), field)
            extra.update(default=default, help=f"{text[field]} (default {default})")
            if field == "dtype":
                extra["choices"] = DTYPES
        parser.add_argument(flag, **extra)
    if allow_pickle:
        parser.add_argument("--allow-pickle", action="store_true", help=text["allow_pickle"])


# ----------------------------------------------------------------------------------- tokens


def add_token_args(parser: Parser) -> None:
    """``--max-tokens`` / ``--min-area``: the denoise settings of commands that write tokens."""
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=None,
        help="denoise: keep at most this many tokens, merging the smallest into neighbours",
    )
    parser.add_argument(
        "--min-area",
        type=int,
        default=None,
        help="denoise: merge tokens smaller than this many pixels into neighbours",
    )


def token_flag_problems(args: argparse.Namespace) -> list[str]:
    """Messages for bad ``--threshold/--resolution/--max-tokens/--min-area`` values (shared
    by every command that turns images into tokens)."""
    problems = []
    if args.threshold is not None and not 0.0 < args.threshold < 1.0:
        problems.append(f"--threshold must be in (0, 1), got {args.threshold}")
    if args.resolution is not None and args.resolution < 32:
        problems.append(f"--resolution must be >= 32, got {args.resolution}")
    if args.max_tokens is not None and args.max_tokens < 1:
        problems.append(f"--max-tokens must be >= 1, got {args.max_tokens}")
    if args.min_area is not None and args.min_area < 0:
        problems.append(f"--min-area must be >= 0, got {args.min_area}")
    return problems


# ---------------------------------------------------------------------- Ray, tracking, smoke

ADDRESS_HELP = "Ray address (default RAY_ADDRESS or local)"


def add_address_arg(parser: Parser, help: str = ADDRESS_HELP) -> None:
    """``--address``: the Ray cluster a job connects to (``directsam.raycluster.init_ray``)."""
    parser.add_argument("--address", default=None, help=help)


def add_tracking_args(
    parser: Parser,
    notes: Mapping[str, str],
    helps: Mapping[str, str] | None = None,
    *,
    no_tracking_dest: str = "no_tracking",
) -> None:
    """``--tracking-uri``, ``--experiment``, ``--no-tracking`` of a job with a config.

    Args:
        notes: ``{"tracking_uri" | "experiment" | "no_tracking": help suffix naming the
            config key}``; the flags listed, in that order.
        helps: replaces a flag's help text.
        no_tracking_dest: ``no_tracking`` (``store_true``) or the config key it sets to False
            (``store_const``; evaluation's ``tracking``).
    """
    text = {
        "tracking_uri": "MLflow URI",
        "experiment": "MLflow experiment",
        "no_tracking": "no MLflow run",
        **(helps or {}),
    }
    for name, note in notes.items():
        help = f"{text[name]} {note}"
        if name == "no_tracking" and no_tracking_dest != "no_tracking":
            parser.add_argument("--no-tracking", dest=no_tracking_dest, action="store_const",
                                const=False, default=None, help=help)  # fmt: skip
        elif name == "no_tracking":
            parser.add_argument("--no-tracking", action="store_true", help=help)
        else:
            parser.add_argument("--" + name.replace("_", "-"), default=None, help=help)


def add_smoke_test_arg(parser: Parser, help: str) -> None:
    """``--smoke-test``: a tiny local run of the job (``directsam.cli.smoke``)."""
    parser.add_argument("--smoke-test", action="store_true", help=help)
