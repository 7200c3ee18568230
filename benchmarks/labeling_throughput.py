"""Pseudo-labeling throughput: the Ray Data pipeline vs the model alone vs a serial seed-style loop.

One run measures, on the same generated SA-1B-format sample and with the same model path
(checkpoint, resolution, batch, dtype, channels_last, eager or compiled):

- ``model_only``: ``BoundaryPredictor.predict_pixels`` (forward + upsample + sigmoid) plus the
  threshold on batches of random pixels already on the device: the ceiling;
- ``serial``: the seed's ``pseudo_labeling.py`` shape, one image at a time: PIL decode,
  human boundary from the JSON, per-image preprocess, forward (batch 1), threshold, RLE, and
  one indented JSON file per image;
- ``pipeline``: ``directsam.labeling.pipeline.run_labeling`` (Ray Data: read + decode tasks,
  a fixed model actor pool, RLE, atomic Parquet shards), end to end and in steady state (from
  the first labeled batch out to the last, i.e. without actor start-up and model load).

Ratios (``pipeline / model_only``, ``pipeline / serial``) come from the same run, for the
pipeline both end to end and in steady state. The steady figure is only meaningful with many
batches per actor (a GPU run of hundreds of images); on a starved 2-core box outputs arrive in
bursts. On CPU the model-only and serial loops get the torch threads of one model actor
(``--threads`` to change). One JSON line is printed (and written with ``--output``).

    python benchmarks/labeling_throughput.py                        # CPU: b0 @ 256, 48 images
    python benchmarks/labeling_throughput.py --device cuda --dtype bf16 --checkpoint scratch:b0 \
        --resolution 1024 --batch 8 --num-images 512 --image-size 1500 2250 \
        --output benchmarks/results/labeling_gpu.json       # GPU node (gpu-actors = GPUs)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _predictor(args: argparse.Namespace) -> Any:
    """The model path all three measurements share (same spec, device, dtype, compile, layout)."""
    from directsam.inference.predictor import BoundaryPredictor

    return BoundaryPredictor(
        args.checkpoint,
        device=args.device,
        dtype=args.dtype,
        resolution=args.resolution,
        compile=args.compile,
        channels_last=not args.no_channels_last,
    )


def model_only(args: argparse.Namespace) -> dict[str, Any]:
    """img/s of forward + upsample + sigmoid + threshold on device-resident random pixels."""
    import torch

    predictor = _predictor(args)
    device = predictor.device
    gen = torch.Generator().manual_seed(0)
    pixels = torch.randn(args.batch, 3, args.resolution, args.resolution, generator=gen)
    pixels = pixels.to(device)
    batches = -(-args.num_images // args.batch)

    def step() -> None:
        (predictor.predict_pixels(pixels, args.resolution) >= args.threshold).cpu()

    with torch.inference_mode():
        for _ in range(args.warmup):
            step()
        _sync(device)
        start = time.perf_counter()
        for _ in range(batches):
            step()
        _sync(device)
        wall = time.perf_counter() - start
    return {
        "img_per_s": round(batches * args.batch / wall, 3),
        "images": batches * args.batch,
        "threads": torch.get_num_threads(),
        "device": str(device),
        "dtype": str(predictor.dtype).replace("torch.", ""),
    }


def serial_loop(args: argparse.Namespace, sample: Path, out: Path) -> dict[str, Any]:
    """The seed's one-image-at-a-time loop, writing one indented JSON per image."""
    import numpy as np
    import torch
    from PIL import Image

    from directsam.data.boundary import masks_to_boundary
    from directsam.data.rle import mask_to_rle
    from directsam.data.sa1b import parse_sa1b_annotation
    from directsam.inference.preprocess import preprocess_images

    predictor = _predictor(args)
    device = predictor.device
    paths = sorted(sample.glob("sa_*/sa_*.jpg"))
    if args.serial_images:
        paths = paths[: args.serial_images]
    out.mkdir(parents=True, exist_ok=True)

    def one(path: Path) -> None:
        image = np.asarray(Image.open(path).convert("RGB"))
        _, rles = parse_sa1b_annotation(path.with_suffix(".json").read_bytes(), str(path))
        human = masks_to_boundary(rles, args.resolution, args.thickness)
        x = preprocess_images([image], args.resolution).to(device)
        probs = predictor.predict_pixels(x, args.resolution)[0]
        pseudo = (probs >= args.threshold).cpu().numpy()
        record = {
            "image_id": path.stem,
            "height": image.shape[0],
            "width": image.shape[1],
            "pseudo_boundary": mask_to_rle(pseudo),
            "human_boundary": mask_to_rle(human),
        }
        (out / f"{path.stem}.json").write_text(json.dumps(record, indent=4))

    with torch.inference_mode():
        for path in paths[: args.warmup]:
            one(path)
        _sync(device)
        start = time.perf_counter()
        for path in paths:
            one(path)
        _sync(device)
        wall = time.perf_counter() - start
    return {
        "img_per_s": round(len(paths) / wall, 3),
        "images": len(paths),
        "threads": torch.get_num_threads(),
    }


def pipeline(args: argparse.Namespace, sample: Path, out: Path) -> dict[str, Any]:
    from directsam.labeling.config import LabelConfig
    from directsam.labeling.pipeline import run_labeling

    cfg = LabelConfig(output=str(out), thickness=args.thickness)
    cfg.source.type, cfg.source.input, cfg.source.dataset = "sa1b", str(sample), "bench"
    m = cfg.model
    m.checkpoint, m.resolution, m.threshold = args.checkpoint, args.resolution, args.threshold
    m.device, m.dtype, m.compile = args.device, args.dtype, args.compile
    m.channels_last = not args.no_channels_last
    c = cfg.compute
    c.batch_size, c.gpu_actors = args.batch, args.gpu_actors
    c.cpus_per_actor = args.cpus_per_actor
    c.decode_batch_size = args.decode_batch
    c.image_decode = args.image_decode
    c.rows_per_shard = args.rows_per_shard or max(args.batch, args.num_images // 4)
    c.progress_interval_s = 30.0
    cfg.tracking.enabled = False
    start = time.perf_counter()
    summary = run_labeling(cfg, log=lambda *_: None)
    total = time.perf_counter() - start
    assert summary["num_rows"] == args.num_images and summary["num_failed"] == 0, summary
    return {
        "img_per_s": summary["images_per_s"],
        "steady_img_per_s": summary["steady_images_per_s"],
        "with_listing_img_per_s": round(args.num_images / total, 3),
        "images": summary["num_rows"],
        "blocks": summary["num_blocks"],
        "rows_per_shard": c.rows_per_shard,
        "gpu_actors": c.gpu_actors,
        "image_decode": c.image_decode,
    }


def _phase(name: str, fn: Any, *args: Any) -> Any:
    start = time.perf_counter()
    out = fn(*args)
    print(f"[bench] {name}: {out} ({time.perf_counter() - start:.1f} s)", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default="scratch:b0", help="model spec (default scratch:b0)")
    p.add_argument("--resolution", type=int, default=256, help="model input side (default 256)")
    p.add_argument("--batch", type=int, default=8, help="images per forward (default 8)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    p.add_argument("--dtype", default="auto", help="auto (bf16 on CUDA) | fp32 | fp16 | bf16")
    p.add_argument("--compile", action="store_true", help="torch.compile (all three paths)")
    p.add_argument("--no-channels-last", action="store_true", help="keep NCHW")
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--thickness", type=int, default=3, help="human boundary thickness (3)")
    p.add_argument("--num-images", type=int, default=48, help="sample size (default 48)")
    p.add_argument(
        "--image-size",
        type=int,
        nargs=2,
        default=(480, 640),
        metavar=("H", "W"),
        help="generated image size (default 480 640; SA-1B is ~1500 2250)",
    )
    p.add_argument(
        "--serial-images",
        type=int,
        default=None,
        help="images of the serial loop (default: the whole sample)",
    )
    p.add_argument("--gpu-actors", type=int, default=1, help="model actors (default 1)")
    p.add_argument("--cpus-per-actor", type=float, default=1.0, help="CPU model actors (1)")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads of the model-only and serial loops (default: on CPU, those of one "
        "model actor; on CUDA, torch's default)",
    )
    p.add_argument("--decode-batch", type=int, default=8, help="rows per decode task batch")
    p.add_argument(
        "--image-decode",
        default="cpu",
        choices=("cpu", "gpu", "auto"),
        help="pipeline's compute.image_decode: cpu (CPU tasks, default) | gpu (JPEG bytes to the "
        "CUDA actors, nvJPEG) | auto",
    )
    p.add_argument("--rows-per-shard", type=int, default=None, help="default num_images / 4")
    p.add_argument("--num-cpus", type=int, default=None, help="local Ray CPUs (default all)")
    p.add_argument("--address", default="local", help="Ray address (default: a new local one)")
    p.add_argument("--warmup", type=int, default=2, help="untimed batches / images (default 2)")
    p.add_argument("--workdir", default=None, help="scratch folder (default: a temp dir)")
    p.add_argument("--output", default=None, help="also write the JSON result here")
    args = p.parse_args(argv)

    import ray
    import torch

    from directsam.data.sample import make_sample

    work = Path(args.workdir or tempfile.mkdtemp(prefix="labeling_bench_"))
    sample = work / "sample"
    if not sample.exists():
        make_sample(
            sample,
            num_images=args.num_images,
            seed=0,
            kind="sa1b",
            height=args.image_size[0],
            width=args.image_size[1],
        )
    for d in ("serial", "pipeline"):
        shutil.rmtree(work / d, ignore_errors=True)

    result: dict[str, Any] = {
        "benchmark": "labeling_throughput",
        "checkpoint": args.checkpoint,
        "resolution": args.resolution,
        "batch": args.batch,
        "compile": args.compile,
        "channels_last": not args.no_channels_last,
        "num_images": args.num_images,
        "image_size": list(args.image_size),
        "cpus": os.cpu_count(),
        "device_name": (
            torch.cuda.get_device_name()
            if torch.cuda.is_available()
            else platform.processor() or platform.machine()
        ),
        "torch": torch.__version__,
        "ray": ray.__version__,
    }
    # Ray first, so the driver-side loops below run while the cluster idles (as a job would).
    ray.init(
        address=args.address, num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False
    )
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        result["pipeline"] = _phase("pipeline", pipeline, args, sample, work / "pipeline")
    finally:
        ray.shutdown()
    # The driver-side loops get the torch threads of one model actor (1 per CPU it holds;
    # more threads than free cores only adds contention on a shared CPU box).
    threads = args.threads
    if threads is None and not torch.cuda.is_available():
        threads = max(1, int(args.cpus_per_actor))
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        result["model_only"] = _phase("model-only", model_only, args)
        result["serial"] = _phase("serial", serial_loop, args, sample, work / "serial")
    finally:
        torch.set_num_threads(before)
    result["dtype"] = result["model_only"]["dtype"]
    pipe = result["pipeline"]["steady_img_per_s"]
    result["ratio_pipeline_steady_to_model_only"] = round(
        pipe / result["model_only"]["img_per_s"], 3
    )
    result["ratio_pipeline_end_to_end_to_model_only"] = round(
        result["pipeline"]["img_per_s"] / result["model_only"]["img_per_s"], 3
    )
    result["ratio_pipeline_steady_to_serial"] = round(pipe / result["serial"]["img_per_s"], 3)
    result["ratio_pipeline_end_to_end_to_serial"] = round(
        result["pipeline"]["img_per_s"] / result["serial"]["img_per_s"], 3
    )
    line = json.dumps(result)
    print(line)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(line + "\n")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return result


if __name__ == "__main__":
    main()
