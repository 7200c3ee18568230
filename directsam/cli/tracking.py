"""``directsam tracking replay SPOOL``: send the MLflow records a job spooled while the tracking
server was unreachable (see docs/RELIABILITY.md). Idempotent: a second replay adds nothing.

An entry point above the stages: a spool may hold training's final model, which is logged with
the MLflow model flavour of ``directsam.delivery`` (through ``directsam.training.track``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from directsam.cli.command import standalone_main


def _add_replay_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "spool",
        metavar="SPOOL",
        help="a spool folder (the path in the job's warning, e.g. OUTPUT/_mlflow_spool) or file",
    )
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="send to this MLflow URI instead of the one the spool was written for",
    )


def run_replay(args: argparse.Namespace) -> int:
    """Replay ``args.spool``; 0 when everything is on the server, 1 when some records failed."""
    from directsam.preflight import check_spool, check_tracking
    from directsam.tracking.replay import replay, spool_uri
    from directsam.training.track import log_checkpoint_to_run

    check_spool(args.spool)
    uri = check_tracking(args.tracking_uri or spool_uri(args.spool), enabled=True)
    try:
        report = replay(args.spool, uri, log=print, log_model=log_checkpoint_to_run)
    except Exception as err:  # noqa: BLE001 - the server went away mid-replay: say so, briefly
        from directsam.tracking.client import first_line

        print(
            f"directsam tracking replay: error: stopped at {uri} ({first_line(err)}); run it "
            "again when the server is back (what was sent is skipped)",
            file=sys.stderr,
        )
        return 1
    for reason in report.failed:
        print(f"directsam tracking replay: failed: {reason}", file=sys.stderr)
    return 1 if report.failed else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``tracking replay``."""
    p = subparsers.add_parser("tracking", help="MLflow tracking chores (replay a spool)")
    sub = p.add_subparsers(dest="tracking_command", metavar="ACTION", required=True)
    r = sub.add_parser(
        "replay", help="send a tracking spool to MLflow (idempotent)", description=__doc__
    )
    _add_replay_args(r)
    r.set_defaults(func=run_replay)


def main(argv: Sequence[str] | None = None) -> int:
    """``directsam tracking replay`` on its own parser (``python -m directsam.cli tracking
    replay SPOOL`` is the same)."""
    return standalone_main("directsam tracking replay", _add_replay_args, run_replay, argv,
                           description=__doc__)  # fmt: skip
