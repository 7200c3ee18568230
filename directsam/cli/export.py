"""``directsam export``: a checkpoint -> a Hub-ready folder (with model card) or an ONNX graph.

Registration imports nothing heavy; the command imports its exporter when it runs.
"""

from __future__ import annotations

import argparse
import json

from directsam.cli.flags import add_model_args
from directsam.model.spec import DEFAULT_RESOLUTION


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``export`` (sets ``func`` on the namespace)."""
    e = subparsers.add_parser(
        "export",
        help="export a checkpoint as a Hub-ready folder (with model card) or ONNX",
        description="Write a folder that from_pretrained and the Hugging Face Hub accept "
        "(config, safetensors, preprocessor config, directsam.json, README model card), or "
        "with --format onnx an ONNX graph with a dynamic batch axis, checked with onnxruntime.",
    )
    add_model_args(e, ("checkpoint",))
    e.add_argument("--output", required=True, help="destination folder")
    e.add_argument("--format", default="hub", choices=("hub", "onnx"), help="default hub")
    e.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow URI to read evaluation results for the card (with --experiment)",
    )
    e.add_argument(
        "--experiment",
        default=None,
        help="evaluation experiment for the card's table (e.g. directsam-eval)",
    )
    e.add_argument(
        "--resolution",
        type=int,
        default=None,
        help=f"onnx: input side (default: the checkpoint's, else {DEFAULT_RESOLUTION})",
    )
    e.add_argument("--opset", type=int, default=17, help="onnx: opset version (default 17)")
    e.add_argument(
        "--no-check", action="store_true", help="onnx: skip the onnxruntime parity check"
    )
    add_model_args(e, (), allow_pickle=True)
    e.set_defaults(func=run_export_cmd)


def _check_export(args: argparse.Namespace) -> None:
    from directsam import preflight

    preflight.check_output_dir(args.output, "--output")
    preflight.check_checkpoint(args.checkpoint, "--checkpoint", args.allow_pickle)
    if args.tracking_uri is not None:
        preflight.check_tracking(args.tracking_uri, reader=True)


def run_export_cmd(args: argparse.Namespace) -> int:
    """``directsam export``."""
    from directsam.config import ConfigError

    _check_export(args)
    try:
        if args.format == "onnx":
            from directsam.delivery.onnx_export import export_onnx

            report = export_onnx(
                args.checkpoint,
                args.output,
                args.resolution,
                args.opset,
                check=not args.no_check,
                allow_pickle=args.allow_pickle,
            )
            print(json.dumps(report.get("parity", []), indent=None))
        else:
            from directsam.delivery.hub_export import export_hub

            export_hub(
                args.checkpoint,
                args.output,
                args.tracking_uri,
                args.experiment,
                allow_pickle=args.allow_pickle,
            )
    except (OSError, ValueError) as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(f"--checkpoint {args.checkpoint}: {err}") from err
    print(args.output)
    return 0
