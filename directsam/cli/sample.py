"""``directsam make-sample``: write a small synthetic dataset (``directsam.data.sample``)."""

from __future__ import annotations

import argparse

from directsam.data.sample import DEFAULT_HEIGHT, DEFAULT_WIDTH, KINDS, make_sample


def _run(args: argparse.Namespace) -> int:
    from directsam.config import ConfigError

    for flag, value, low in (
        ("--num-images", args.num_images, 1),
        ("--images-per-tar", args.images_per_tar, 1),
        ("--height", args.height, 8),
        ("--width", args.width, 8),
    ):
        if value is not None and value < low:
            raise ConfigError(f"{flag} must be >= {low}, got {value}")
    root = make_sample(
        args.output,
        num_images=args.num_images,
        seed=args.seed,
        kind=args.kind,
        height=args.height,
        width=args.width,
        images_per_tar=args.images_per_tar,
    )
    print(root)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``make-sample`` subcommand (sets ``func`` on the parsed namespace)."""
    p = subparsers.add_parser(
        "make-sample",
        help="write a small synthetic dataset (SA-1B, label-map folder or COCO JSON)",
        description=make_sample.__doc__.split("\n\n")[0] if make_sample.__doc__ else None,
    )
    p.add_argument("--output", required=True, help="root folder to write")
    p.add_argument("--num-images", type=int, default=8, help="number of images (default 8)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--kind", choices=KINDS, default="sa1b", help="layout (default sa1b)")
    p.add_argument(
        "--height", type=int, default=None, help=f"image height (default {DEFAULT_HEIGHT})"
    )
    p.add_argument("--width", type=int, default=None, help=f"image width (default {DEFAULT_WIDTH})")
    p.add_argument("--images-per-tar", type=int, default=4, help="SA-1B images per tar (default 4)")
    p.set_defaults(func=_run)
