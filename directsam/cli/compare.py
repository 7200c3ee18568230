"""``directsam compare``: trial runs of an MLflow experiment -> tables + recall-vs-tokens plot.

Reads what ``directsam evaluate`` / ``sweep`` logged (``directsam.evaluation.compare``); with
``--log-run`` stores the table, its CSV and the plot as a comparison run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from directsam.cli.command import standalone_main


def _run_compare(args: argparse.Namespace) -> int:
    from directsam import preflight as pf
    from directsam.config import ConfigError
    from directsam.evaluation.compare import compare

    try:
        labels = _compare_labels(args.label)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    pf.check_output_file(args.output, "--output")
    uri = pf.check_tracking(args.tracking_uri, reader=True)
    assert uri is not None
    try:
        text, path, curves = compare(
            args.experiment, uri, args.output, args.dataset, args.checkpoint,
            wide=args.wide, labels=labels,
        )  # fmt: skip
    except ValueError as err:
        raise ConfigError(str(err)) from None
    except Exception as err:  # noqa: BLE001 - the server went away after the check
        from directsam.tracking.client import first_line

        raise ConfigError(
            f"--tracking-uri {uri}: reading MLflow failed ({first_line(err)})"
        ) from None
    print(text)
    if path is not None:
        print(f"\nplot: {path}")
    if args.log_run and path is not None:
        from directsam.evaluation.compare import column_order, log_comparison_run, save_comparison

        files = save_comparison(text, curves, path, args.checkpoint, labels)
        columns = column_order(curves, args.checkpoint)
        run_id, warning = log_comparison_run(args.experiment, uri, [path, *files], columns, labels)
        if warning:
            print(warning, file=sys.stderr)
        else:
            print(f"MLflow: {uri} comparison run {run_id} (experiment {args.experiment})")
    return 0


def _compare_labels(items: list[str] | None) -> dict[str, str]:
    """``--label SPEC=NAME`` values -> {spec: name}; the last ``=`` splits (specs hold none)."""
    labels: dict[str, str] = {}
    for item in items or []:
        spec, sep, name = item.rpartition("=")
        if not sep or not spec or not name.strip():
            raise ValueError(f"--label {item!r}: expected CHECKPOINT=NAME")
        labels[spec] = name.strip()
    return labels


def _add_compare_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--experiment", default="directsam-eval", help="MLflow experiment (default directsam-eval)"
    )
    parser.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow URI (default MLFLOW_TRACKING_URI or ./mlflow.db)",
    )
    parser.add_argument("--output", default="recall_vs_tokens.png", help="PNG path of the plot")
    parser.add_argument(
        "--dataset", action="append", default=None, help="only this dataset (repeatable)"
    )
    parser.add_argument(
        "--checkpoint",
        action="append",
        default=None,
        help="only this checkpoint (repeatable; --wide columns follow this order)",
    )
    parser.add_argument(
        "--wide",
        action="store_true",
        help="one threshold x checkpoint table (recall, tokens) per dataset instead of one per curve",
    )
    parser.add_argument(
        "--label",
        action="append",
        default=None,
        metavar="CHECKPOINT=NAME",
        help="show CHECKPOINT as NAME in the table and the plot (repeatable)",
    )
    parser.add_argument(
        "--log-run",
        action="store_true",
        help="also log the table, its CSV and the plot as a comparison run in --experiment",
    )


def register(subparsers: Any) -> None:
    """Add ``compare`` to the ``directsam`` parser."""
    p = subparsers.add_parser(
        "compare", help="table + recall-vs-tokens plot of an MLflow experiment"
    )
    _add_compare_args(p)
    p.set_defaults(func=_run_compare)


def compare_main(argv: Sequence[str] | None = None) -> int:
    """``directsam compare``; returns the exit code."""
    return standalone_main("directsam compare", _add_compare_args, _run_compare, argv)
