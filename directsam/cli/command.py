"""How every command runs: the one error wrapper and the standalone parser of a job script.

A configuration or flag mistake raises :class:`directsam.config.ConfigError` anywhere below a
command; :func:`run_command` turns it into one line ``PROG: error: MESSAGE`` on stderr and exit
status 2 (argparse's own status for a bad flag), for ``directsam COMMAND`` and the
``ray_jobs/*.py`` scripts alike. Anything else propagates (a bug shows its traceback).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from directsam.config import ConfigError

Run = Callable[[argparse.Namespace], Any]


def run_command(prog: str, func: Run, args: argparse.Namespace) -> int:
    """``func(args)`` as an exit status: its int result (None = 0), or 2 on ``ConfigError``."""
    try:
        result = func(args)
    except ConfigError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    return int(result or 0)


def standalone_main(
    prog: str,
    add_args: Callable[[argparse.ArgumentParser], None],
    func: Run,
    argv: Sequence[str] | None = None,
    **parser_kwargs: Any,
) -> int:
    """Parse ``argv`` with a parser of its own (``add_args``) and run ``func`` like a command:
    the body of each ``ray_jobs/<job>.py`` (same flags as ``directsam <job>``)."""
    parser = argparse.ArgumentParser(prog=prog, **parser_kwargs)
    add_args(parser)
    return run_command(prog, func, parser.parse_args(argv))
