"""The entry-point wing: the ``directsam`` console script, one module per command.

Every command module exposes ``register(subparsers)``, which adds its subcommand(s) and sets
``func`` on the parsed namespace, and the job commands a ``*_main(argv)`` that their
``ray_jobs/<job>.py`` script calls. Flag groups several commands share live in
:mod:`directsam.cli.flags`; the one error wrapper (``ConfigError`` -> ``PROG: error: ...``,
exit 2) in :mod:`directsam.cli.command`; the shared ``--smoke-test`` set-up in
:mod:`directsam.cli.smoke`. This is the top layer (docs/ARCHITECTURE.md "Layers"): a command may
import any stage, nothing below imports the wing.

Registration stays cheap (no torch/ray/mlflow imports at module level), so ``directsam --help``
answers at once; each command imports what it runs inside its run function.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from directsam.cli import (
    compare,
    evaluate,
    export,
    fetch,
    label,
    predict,
    sample,
    segment,
    submit,
    tracking,
    train,
)
from directsam.cli.command import run_command

# Order is the order of `directsam --help`.
COMMANDS = (
    sample,  # make-sample
    predict,  # predict
    fetch,  # fetch-sa1b, fetch
    label,  # label
    train,  # pretrain, self-train
    evaluate,  # evaluate, sweep
    compare,  # compare
    segment,  # segment
    export,  # export
    submit,  # submit
    tracking,  # tracking replay
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="directsam",
        description="DirectSAM on Ray: boundary models, pseudo-labeling, training and evaluation.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return run_command(f"directsam {args.command}", args.func, args)


__all__ = ["COMMANDS", "build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
