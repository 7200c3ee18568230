"""The ``directsam`` console script: one subcommand per job, each registered by its own module.

Each module in ``COMMANDS`` exposes ``register(subparsers)``, which adds its subcommand(s) and
sets ``func`` on the parsed namespace. Registration must stay cheap (no torch/ray imports), so
``directsam --help`` answers at once.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Order is the order of `directsam --help`.
COMMANDS: tuple[str, ...] = (
    "directsam.data.sample",  # make-sample
    "directsam.inference.predict_cli",  # predict
    "directsam.fetch.cli",  # fetch-sa1b, fetch
    "directsam.labeling.cli",  # label
    "directsam.training.cli",  # pretrain, self-train
    "directsam.evaluation.cli",  # evaluate, sweep, compare
    "directsam.delivery.cli",  # segment, export
    "directsam.submit",  # submit
    "directsam.tracking_cli",  # tracking replay
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="directsam",
        description="DirectSAM on Ray: boundary models, pseudo-labeling, training and evaluation.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            # Only tolerate the command module itself being absent (a partial install);
            # a missing dependency inside it is a real error.
            if err.name is None or not name.startswith(err.name):
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from directsam.config import ConfigError

    try:
        result = args.func(args)
    except ConfigError as err:
        print(f"directsam {args.command}: error: {err}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
