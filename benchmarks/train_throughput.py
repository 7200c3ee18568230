"""Training throughput: the Ray Train loop with its real input pipeline vs a bare PyTorch loop.

Both sides run the same model (``--init``), resolution, batch, precision and step body
(uint8 -> normalised input with the photometric augmentation, HF ``num_labels=1`` BCE,
backward, clip 0.04, AdamW), in one process run, so the ratio is measured under the same load:

* **bare**: one process, one in-memory uint8 batch reused every step (no data loading at all);
  images/s over ``--steps`` steps after ``--warmup`` steps, measured before and after the Ray
  run (the ratio uses their mean). On CPU it uses the worker's thread count
  (``--cpus-per-worker``: Ray sets ``OMP_NUM_THREADS`` to a worker's CPU reservation).
* **ray**: ``directsam.training.run_training`` on a generated SA-1B-format sample: Ray Data
  reads and decodes the JPEGs, builds the boundary targets on the fly, and the worker reads its
  shard with ``iter_torch_batches``. images/s is the loop's ``steady_images_per_s`` (the
  optimizer steps after the first logging interval of ``--warmup`` steps, without checkpoint
  time). The run is sized to stay within one pass over the sample.

Also the per-image CPU cost (one thread) of producing a target at ``--target-resolution`` from
an SA-1B-sized annotation (``--target-hw``, ``--target-masks`` masks): on the fly
(``annotation_to_boundary``: JSON + RLE decode + bands) vs the cached path (decode the stored
RLE of the finished target, what merged-label shards or a prepared-target cache read), next to
the cost of decoding + resizing the image itself, which both paths pay.

Prints one JSON line and, with ``--output``, writes it to a file. Usage::

    .venv/bin/python benchmarks/train_throughput.py                       # CPU, B0 at 128 px
    .venv/bin/python benchmarks/train_throughput.py --device cuda --init scratch:b0 \\
        --resolution 1024 --batch-size 8 --num-images 512 --steps 40       # a GPU node
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def bare_loop(args: argparse.Namespace) -> dict[str, float]:
    """images/s of a single-process loop on one in-memory batch (same step body as the loop)."""
    import torch

    from directsam.model import load_model
    from directsam.training.data import to_model_input
    from directsam.training.loss import boundary_loss

    device = torch.device(args.device)
    if device.type == "cpu":
        # Ray gives a worker reserving N CPUs OMP_NUM_THREADS=N: compute with the same threads.
        torch.set_num_threads(max(1, int(args.cpus_per_worker)))
    torch.manual_seed(0)
    model = load_model(args.init).to(device).train()
    channels_last = device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    dtype = {"cuda": torch.bfloat16}.get(device.type) if args.precision == "auto" else None
    if args.precision in ("bf16", "fp16"):
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[args.precision]
    gen = torch.Generator().manual_seed(0)
    r, b = args.resolution, args.batch_size
    images = torch.randint(0, 256, (b, r, r, 3), dtype=torch.uint8, generator=gen).to(device)
    targets = (torch.rand(b, r, r, generator=gen) < 0.1).to(torch.uint8).to(device)

    def step() -> None:
        pixels = to_model_input(images, gen, args.augment_p, channels_last)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss, _ = boundary_loss(model, pixels, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.04)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    return {
        "images_per_s": args.steps * b / dt,
        "s_per_step": dt / args.steps,
        "torch_threads": torch.get_num_threads(),
    }


def ray_loop(args: argparse.Namespace, work: Path) -> dict[str, float]:
    """Steady images/s of ``run_training`` (1 worker) on a generated sample."""
    from directsam.config import load_config
    from directsam.data.sample import make_sample
    from directsam.raycluster import init_ray
    from directsam.training.config import PretrainConfig
    from directsam.training.trainer import run_training

    if args.data:  # an existing SA-1B-format sample (e.g. shared with other benchmarks)
        data = Path(args.data)
    else:
        data = make_sample(work / "sample", num_images=args.num_images, seed=0, kind="sa1b",
                           height=args.sample_hw[0], width=args.sample_hw[1])  # fmt: skip
    total = args.warmup + args.steps
    precision = args.precision
    cfg = load_config(
        PretrainConfig,
        overrides=[
            f"init={args.init}",
            f"source.input={data}",
            f"data.resolution={args.resolution}",
            "data.thickness=3",
            "data.shuffle_buffer=0",
            f"data.decode_batch_size={args.batch_size}",
            f"optim.batch_size={args.batch_size}",
            f"optim.max_steps={total}",
            "optim.warmup_steps=0",
            f"optim.precision={precision}",
            f"optim.augment_p={args.augment_p}",
            "validation.every_steps=0",
            f"checkpoint.every_steps={total}",
            f"run.storage_path={work / 'runs'}",
            "run.num_workers=1",
            f"run.use_gpu={str(args.device == 'cuda').lower()}",
            f"run.cpus_per_worker={args.cpus_per_worker}",
            "tracking.enabled=false",
            f"tracking.log_every_steps={args.warmup}",
        ],
    )
    init_ray(None)
    t0 = time.perf_counter()
    result = run_training(cfg)
    wall = time.perf_counter() - t0
    m = result.metrics
    return {
        "images_per_s": float(m["steady_images_per_s"]),
        "steps": int(m["step"]),
        "fit_wall_s": wall,
        "sample_images": len(list(data.glob("sa_*/sa_*.jpg"))) if args.data else args.num_images,
    }


def target_cost(args: argparse.Namespace, work: Path) -> dict[str, float]:
    """Per-image CPU ms (one thread, process CPU time) of image decode, on-the-fly target and
    cached target; CPU time rather than wall time, so other load on the box does not count."""
    import cv2
    import torch

    from directsam.data.decode import decode_image, resize_rgb
    from directsam.data.rle import mask_to_rle, rle_to_mask
    from directsam.data.sample import make_sample
    from directsam.data.targets import annotation_to_boundary

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    h, w = args.target_hw
    root = make_sample(work / "big", num_images=args.target_images, seed=1, kind="sa1b",
                       height=h, width=w, num_objects=args.target_masks)  # fmt: skip
    pairs = sorted((p, p.with_suffix(".json")) for p in root.glob("sa_*/*.jpg"))
    r, t = args.target_resolution, 3
    times: dict[str, list[float]] = {"image_decode_resize": [], "target_on_the_fly": [],
                                     "target_cached_rle": []}  # fmt: skip
    for _ in range(args.target_repeats):
        for jpg, ann in pairs:
            data, meta = jpg.read_bytes(), ann.read_bytes()
            t0 = time.process_time()
            image = decode_image(data, jpg.name)
            resize_rgb(image, r)
            t1 = time.process_time()
            target = annotation_to_boundary(meta, "sa1b", image.shape[:2], r, t, jpg.name)
            t2 = time.process_time()
            cached = json.dumps(mask_to_rle(target))  # what a cache / merged label stores
            t3 = time.process_time()
            again = rle_to_mask(json.loads(cached), (r, r))
            t4 = time.process_time()
            assert (again == target).all()
            times["image_decode_resize"].append(t1 - t0)
            times["target_on_the_fly"].append(t2 - t1)
            times["target_cached_rle"].append(t4 - t3)
    out = {f"{k}_ms": 1000 * statistics.median(v) for k, v in times.items()}
    out.update(source_hw=[h, w], masks=args.target_masks, resolution=r, thickness=t)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--init", default="scratch:b0")
    p.add_argument("--resolution", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp16", "fp32"])
    p.add_argument("--augment-p", type=float, default=0.25)
    p.add_argument("--warmup", type=int, default=3, help="steps before timing starts")
    p.add_argument("--steps", type=int, default=10, help="timed steps")
    p.add_argument(
        "--num-images",
        type=int,
        default=0,
        help="sample size for the Ray run (default: one pass of warmup + steps)",
    )
    p.add_argument("--sample-hw", type=int, nargs=2, default=[384, 512], metavar=("H", "W"))
    p.add_argument(
        "--data",
        default=None,
        help="existing SA-1B-format sample for the Ray run (default: generate one of "
        "--num-images images of --sample-hw)",
    )
    p.add_argument("--cpus-per-worker", type=float, default=1.0)
    p.add_argument("--target-resolution", type=int, default=1024)
    p.add_argument("--target-hw", type=int, nargs=2, default=[1500, 2250], metavar=("H", "W"))
    p.add_argument("--target-masks", type=int, default=100)
    p.add_argument("--target-images", type=int, default=2)
    p.add_argument("--target-repeats", type=int, default=2)
    p.add_argument("--skip-ray", action="store_true", help="only the bare loop and target cost")
    p.add_argument("--output", default=None, help="also write the JSON line here")
    args = p.parse_args(argv)
    if not args.num_images:
        # One pass: the last 1% of the sample is held out, so add a few spare images.
        args.num_images = (args.warmup + args.steps) * args.batch_size + 2

    import torch

    report: dict = {"device": args.device, "init": args.init, "resolution": args.resolution,
                    "batch_size": args.batch_size, "precision": args.precision,
                    "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count()}  # fmt: skip
    if args.device == "cuda":
        report["gpu"] = torch.cuda.get_device_name(0)
    with tempfile.TemporaryDirectory(prefix="train-throughput-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        report["targets"] = target_cost(args, work)
        # Bare loop before and after the Ray run, so load that drifts during the run (shared
        # machines) shows up as a spread instead of biasing the ratio.
        report["bare"] = bare_loop(args)
        if not args.skip_ray:
            report["ray"] = ray_loop(args, work)
            report["bare_after"] = bare_loop(args)
            bare = (report["bare"]["images_per_s"] + report["bare_after"]["images_per_s"]) / 2
            report["ratio_ray_over_bare"] = report["ray"]["images_per_s"] / bare
        t = report["targets"]
        report["target_on_the_fly_over_cached"] = (
            t["target_on_the_fly_ms"] / t["target_cached_rle_ms"]
        )
        report["wall_s"] = time.perf_counter() - t0
    line = json.dumps(report)
    print(line)
    if args.output:
        Path(args.output).write_text(line + "\n")


if __name__ == "__main__":
    main()
