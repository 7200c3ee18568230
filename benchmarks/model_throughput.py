"""Model-only throughput of a SegFormer boundary model (images/s), printed as one JSON line.

Times ``BoundaryPredictor``'s forward on random pixels already on the device (the ceiling the
labeling pipeline is measured against), with and without the logits upsample + sigmoid.
Random-init ``scratch:*`` weights cost the same as trained ones.

    python benchmarks/model_throughput.py                                  # CPU: b0 @ 256, batch 4
    python benchmarks/model_throughput.py --checkpoint scratch:b0 --resolution 1024 --batch 8
    python benchmarks/model_throughput.py --checkpoint scratch:b5 --resolution 1800 --batch 8 \
        --dtype bf16 --compile
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (``platform.processor()`` is empty on Linux)."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _time(fn, device, warmup: int, iters: int) -> tuple[list[float], float]:
    """Per-iteration wall times, and the CPU seconds this process spent over all iterations
    (all threads: on a shared CPU box, CPU time per image is the load-independent figure)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    cpu0 = time.process_time()
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times, time.process_time() - cpu0


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--checkpoint", default="scratch:b0", help="model spec (default scratch:b0)"
    )
    parser.add_argument("--resolution", type=int, default=256, help="input side (default 256)")
    parser.add_argument("--batch", type=int, default=4, help="images per forward (default 4)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    parser.add_argument("--dtype", default="auto", help="auto | fp32 | fp16 | bf16 (default auto)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument(
        "--no-channels-last", dest="channels_last", action="store_false", help="keep NCHW"
    )
    parser.add_argument("--warmup", type=int, default=3, help="untimed iterations (default 3)")
    parser.add_argument("--iters", type=int, default=10, help="timed iterations (default 10)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)

    import torch

    from directsam.inference.predictor import BoundaryPredictor

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels
    predictor = BoundaryPredictor(
        args.checkpoint,
        device=args.device,
        dtype=args.dtype,
        resolution=args.resolution,
        compile=args.compile,
        channels_last=args.channels_last,
    )
    device = predictor.device
    pixels = torch.randn(
        args.batch, 3, args.resolution, args.resolution, generator=torch.Generator().manual_seed(0)
    ).to(device, dtype=predictor.dtype)
    if args.channels_last:
        pixels = pixels.contiguous(memory_format=torch.channels_last)

    model_times, model_cpu = _time(
        lambda: predictor.predict_logits(pixels), device, args.warmup, args.iters
    )
    full_times, _ = _time(
        lambda: predictor.predict_pixels(pixels, args.resolution), device, args.warmup, args.iters
    )
    result = {
        "benchmark": "model_throughput",
        "checkpoint": args.checkpoint,
        "resolution": args.resolution,
        "batch": args.batch,
        "max_batch": predictor.max_batch,
        "device": str(device),
        "device_name": (
            torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()
        ),
        "dtype": str(predictor.dtype).replace("torch.", ""),
        "compile": args.compile,
        "channels_last": args.channels_last,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 1),
        "iters": args.iters,
        "params_m": round(sum(p.numel() for p in predictor.model.parameters()) / 1e6, 2),
        "model_img_per_s": round(args.batch * args.iters / sum(model_times), 2),
        "model_ms_per_batch_median": round(1000 * statistics.median(model_times), 2),
        "model_cpu_s_per_img": round(model_cpu / (args.batch * args.iters), 4),
        "with_upsample_img_per_s": round(args.batch * args.iters / sum(full_times), 2),
        "torch": torch.__version__,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
