"""``directsam segment``: images -> one SA-1B-style JSON per image (tokens as COCO RLE masks).

Registration imports nothing heavy; the command imports its modules when it runs.
"""

from __future__ import annotations

import argparse
import sys

from directsam.cli.flags import (
    add_address_arg,
    add_model_args,
    add_source_args,
    add_token_args,
    token_flag_problems,
)

# The source fields `segment` offers as flags (--input is also --image's alternative).
SEGMENT_FIELDS = ("type", "input", "num_samples", "seed", "dataset")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``segment`` (sets ``func`` on the namespace)."""
    p = subparsers.add_parser(
        "segment",
        help="cut images into tokens and write SA-1B-style JSON (RLE masks) per image",
        description="Run a boundary model over a source (Ray Data) or one image and write one "
        "SA-1B-style JSON per image: image + annotations with COCO RLE masks.",
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--image", help="one image file: no Ray, written to --output at once")
    where.add_argument("--input", help="source location (with --source); a Ray Data job")
    add_source_args(p, ("type",), notes={"type": "of --input, default images"}, config=False)
    p.add_argument("--output", required=True, help="folder for <image_id>.json files")
    add_model_args(p, ("checkpoint", "threshold", "resolution"))
    add_token_args(p)
    add_model_args(p, ("device", "dtype"))
    p.add_argument(
        "--copy-images",
        action="store_true",
        help="write each image beside its JSON (the folder becomes an SA-1B folder)",
    )
    add_source_args(p, SEGMENT_FIELDS[2:], config=False)
    p.add_argument("--batch-size", type=int, default=4, help="images per model call (default 4)")
    p.add_argument("--actors", type=int, default=1, help="model actors (one per GPU; default 1)")
    add_address_arg(p)
    p.set_defaults(func=run_segment_cmd)


def _check(args: argparse.Namespace) -> None:
    from directsam import preflight
    from directsam.config import ConfigError

    problems = token_flag_problems(args)
    if args.batch_size < 1 or args.actors < 1:
        problems.append("--batch-size and --actors must be >= 1")
    if problems:
        raise ConfigError("; ".join(problems))
    if args.image:
        preflight.check_exists(args.image, "--image", "file")
    else:
        preflight.check_input(args.input, args.source or "images", "--input")
    preflight.check_output_dir(args.output, "--output")
    preflight.check_checkpoint(args.checkpoint, "--checkpoint")


def run_segment_cmd(args: argparse.Namespace) -> int:
    """``directsam segment``; returns 1 when any image failed."""
    from directsam.config import ConfigError
    from directsam.schema import InputError

    _check(args)
    settings = dict(
        threshold=args.threshold,
        resolution=args.resolution,
        max_tokens=args.max_tokens,
        min_area=args.min_area,
        device=args.device,
        dtype=args.dtype,
    )
    if args.image:
        from directsam.delivery.segment import segment_image

        try:
            path = segment_image(
                args.image, args.output, args.checkpoint, copy_image=args.copy_images, **settings
            )
        except InputError as err:
            print(f"directsam segment: error: {err}", file=sys.stderr)
            return 1
        except (OSError, ValueError) as err:
            raise ConfigError(f"--checkpoint {args.checkpoint}: {err}") from err
        print(path)
        return 0
    from directsam.cli.flags import spec_from_args
    from directsam.data.sources.spec import SourceSpec
    from directsam.delivery.segment import run_segment
    from directsam.raycluster import init_ray

    spec = spec_from_args(args, SourceSpec(type="images"), SEGMENT_FIELDS)
    init_ray(args.address)
    try:
        summary = run_segment(
            spec,
            args.output,
            args.checkpoint,
            batch_size=args.batch_size,
            actors=args.actors,
            copy_images=args.copy_images,
            **settings,
        )
    except ValueError as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(str(err)) from err
    return 1 if summary["num_failed"] else 0
