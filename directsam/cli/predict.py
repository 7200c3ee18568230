"""``directsam predict IMAGE...``: image files -> boundary map, token map and overlay PNGs.

Per image ``<stem>`` it writes ``<stem>_boundary.png`` (probabilities x 255, uint8),
``<stem>_tokens.png`` (token labels, uint16; 0 = boundary, 1..N by area, saturating at 65535) and
``<stem>_overlay.png`` (the image tinted per token, boundary in white), all at the image's own
size, and appends one JSON line per image to ``OUTPUT/predictions.jsonl``. A file that cannot be
read or decoded is reported (stderr and an ``error`` line) and the rest still run; the exit
status is then 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from directsam.cli.flags import add_model_args, add_token_args, token_flag_problems
from directsam.inference.overlay import overlay_tokens
from directsam.model.spec import DEFAULT_RESOLUTION, DEFAULT_THRESHOLD


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``predict`` subcommand (sets ``func`` on the parsed namespace)."""
    p = subparsers.add_parser(
        "predict",
        help="predict boundaries and tokens for image files",
        description="Run a boundary model on image files and write boundary/token/overlay PNGs.",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (JPEG, PNG, ...)")
    add_model_args(p, ("checkpoint",))
    p.add_argument("--output", required=True, help="folder for the PNGs and predictions.jsonl")
    add_model_args(p, ("resolution", "threshold", "device", "dtype"))
    p.add_argument(
        "--pyramid",
        type=int,
        nargs="?",
        const=1,
        default=0,
        metavar="LAYERS",
        help="average with LAYERS layers of overlapping crops (bare flag: 1 layer)",
    )
    add_token_args(p)
    add_model_args(p, (), allow_pickle=True)
    p.set_defaults(func=run_predict)


def _check_args(args: argparse.Namespace) -> None:
    from directsam import preflight
    from directsam.config import ConfigError

    problems = token_flag_problems(args)
    if args.pyramid < 0:
        problems.append(f"--pyramid must be >= 0 layers, got {args.pyramid}")
    if problems:
        raise ConfigError("; ".join(problems))
    preflight.check_output_dir(args.output, "--output")
    preflight.check_checkpoint(args.checkpoint, "--checkpoint", args.allow_pickle)


def _unique_stems(paths: list[Path]) -> list[str]:
    """File stems, with ``-1``, ``-2`` ... appended where two inputs share one."""
    seen: dict[str, int] = {}
    stems = []
    for path in paths:
        count = seen.get(path.stem, 0)
        seen[path.stem] = count + 1
        stems.append(path.stem if count == 0 else f"{path.stem}-{count}")
    return stems


def _write_outputs(out_dir: Path, stem: str, image: np.ndarray, probs: np.ndarray, labels) -> None:
    from PIL import Image

    boundary = np.clip(np.rint(probs * 255.0), 0, 255).astype(np.uint8)
    Image.fromarray(boundary).save(out_dir / f"{stem}_boundary.png")
    # PNG holds at most 16 bits per grey pixel; beyond 65535 tokens the labels saturate.
    Image.fromarray(np.minimum(labels, 65535).astype(np.uint16)).save(
        out_dir / f"{stem}_tokens.png"
    )
    Image.fromarray(overlay_tokens(image, labels)).save(out_dir / f"{stem}_overlay.png")


def run_predict(args: argparse.Namespace) -> int:
    """Run ``directsam predict``; returns the exit status (1 if any image failed)."""
    from directsam.config import ConfigError
    from directsam.data.decode import decode_image
    from directsam.inference.denoise import denoise_tokens
    from directsam.inference.predictor import BoundaryPredictor
    from directsam.inference.tokens import probs_to_tokens
    from directsam.model.spec import read_checkpoint_meta
    from directsam.schema import READ_FAILED, InputError

    _check_args(args)
    try:
        meta = read_checkpoint_meta(args.checkpoint)
        resolution = args.resolution or int(meta.get("resolution") or DEFAULT_RESOLUTION)
        threshold = args.threshold or float(meta.get("threshold") or DEFAULT_THRESHOLD)
        predictor = BoundaryPredictor(
            args.checkpoint,
            device=args.device,
            dtype=args.dtype,
            resolution=resolution,
            allow_pickle=args.allow_pickle,
        )
    except (OSError, ValueError) as err:
        raise ConfigError(f"--checkpoint {args.checkpoint}: {err}") from err
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [Path(p) for p in args.images]
    failures = 0
    with open(out_dir / "predictions.jsonl", "a") as log:
        for path, stem in zip(paths, _unique_stems(paths)):
            record: dict[str, Any] = {"image": str(path)}
            try:
                try:
                    data = path.read_bytes()
                except OSError as err:
                    raise InputError(READ_FAILED, f"{path}: {err.strerror or err}") from None
                image = decode_image(data, name=str(path))
                height, width = image.shape[:2]
                probs = predictor.predict(
                    [image],
                    out_size=(height, width),
                    pyramid=args.pyramid > 0,
                    pyramid_layers=max(args.pyramid, 1),
                )[0]
                labels, num_tokens = probs_to_tokens(probs, threshold)
                if args.max_tokens is not None or args.min_area is not None:
                    labels = denoise_tokens(labels, args.min_area or 0, args.max_tokens)
                    num_tokens = int(labels.max())
                _write_outputs(out_dir, stem, image, probs, labels)
            except (InputError, ValueError) as err:
                failures += 1
                print(f"directsam predict: error: {err}", file=sys.stderr)
                record["error"] = str(err)
            else:
                record.update(num_tokens=num_tokens, height=height, width=width)
                print(f"{path}: {num_tokens} tokens")
            record.update(
                checkpoint=args.checkpoint,
                checkpoint_sha=predictor.checkpoint_sha,
                threshold=threshold,
                resolution=resolution,
            )
            log.write(json.dumps(record) + "\n")
            log.flush()
    if failures:
        print(f"directsam predict: {failures} of {len(paths)} images failed", file=sys.stderr)
    return 1 if failures else 0
