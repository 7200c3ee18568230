"""GPU JPEG decode and device post-processing: img/s, and the host CPU they still cost.

Two parts, one JSON line (``--output`` too):

- ``decode``: for every GPU decoder whose package imports (``nvimgcodec``, ``torchvision``;
  :mod:`directsam.inference.gpu_decode`), on batches of the sample's JPEGs: decode only, and
  decode + orientation + resize + normalise at each resolution
  (:func:`directsam.inference.bytes_input.bytes_to_pixels`, what the labeling actor runs):
  img/s (wall, synchronised) and host CPU-ms per image (``time.process_time`` of this
  process: nvJPEG's Huffman decode runs on the host unless the hardware engines take it);
  plus the agreement with Pillow's decode (mean and max absolute difference, grey levels).
  The same figures for the CPU path (Pillow decode + resize, one thread) as the reference.
- ``postprocess``: threshold + column-major bit packing of ``--post-batch`` maps at each
  resolution on the device and the copy of the packed bits to the host, against copying the
  float32 maps and the bool maps; and the host RLE from packed bits per map
  (``boundary_rle_counts``) against the row-major path (unpack + ``mask_to_rle``).

Without CUDA the decode part reports no decoder and post-processing runs on the CPU (the
suite's dry run). Sample: SA-1B folders (``sa_*/sa_*.jpg``) as ``gpu_suite.py`` links them.

    python benchmarks/gpu_decode_throughput.py --sample SAMPLE --output /tmp/gd.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], n_items: int, seconds: float) -> dict[str, float]:
    """items/s (wall) and host CPU-ms per item of ``fn`` (one warm-up call, >= 3 timed)."""
    fn()
    _sync()
    calls, w0, c0 = 0, time.perf_counter(), time.process_time()
    while calls < 3 or time.perf_counter() - w0 < seconds:
        fn()
        _sync()
        calls += 1
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return {
        "per_s": round(calls * n_items / wall, 2),
        "host_cpu_ms_per_item": round(1000 * cpu / (calls * n_items), 3),
    }


def decode_part(sample: Path, resolutions: list[int], batch: int, seconds: float) -> dict:
    import torch

    from directsam.data.decode import decode_image, resize_rgb
    from directsam.inference.gpu_decode import available_decoders, gpu_decodable

    paths = sorted(sample.glob("sa_*/sa_*.jpg"))
    blobs = [p.read_bytes() for p in paths]
    work = [blobs[i % len(blobs)] for i in range(batch)]
    names = [f"img{i}" for i in range(batch)]
    out: dict[str, Any] = {
        "images": len(blobs),
        "batch": batch,
        "gpu_decodable": sum(map(gpu_decodable, blobs)),
        "available": available_decoders(),
        "cuda": torch.cuda.is_available(),
        "decoders": {},
    }
    torch.set_num_threads(1)
    cpu = {"decode": timed(lambda: [decode_image(b) for b in work], batch, seconds)}
    for res in resolutions:
        cpu[f"decode_resize_{res}"] = timed(
            lambda res=res: [resize_rgb(decode_image(b), res) for b in work], batch, seconds
        )
    out["pillow_one_thread"] = cpu
    if not out["cuda"]:
        return out
    for name in out["available"]:
        out["decoders"][name] = _one_decoder(name, work, names, blobs[:4], resolutions, seconds)
    return out


def _one_decoder(
    name: str,
    work: list[bytes],
    names: list[str],
    check: list[bytes],
    resolutions: list[int],
    seconds: float,
) -> dict[str, Any]:
    """Figures of one GPU decoder, or ``{"error": ...}`` when it cannot run."""
    import numpy as np
    import torch

    from directsam.data.decode import decode_image
    from directsam.inference.bytes_input import bytes_to_pixels
    from directsam.inference.gpu_decode import DECODERS

    device = torch.device("cuda")
    batch = len(work)
    try:
        decoder = DECODERS[name][1](device)
        row: dict[str, Any] = {"decode": timed(lambda: decoder.decode(work), batch, seconds)}
        for res in resolutions:
            row[f"decode_resize_{res}"] = timed(
                lambda res=res: bytes_to_pixels(work, names, res, device, decoder), batch, seconds
            )
        diffs = [
            np.abs(g.cpu().numpy().astype(np.int16) - r.astype(np.int16))
            for g, r in zip(decoder.decode(check), (decode_image(b) for b in check))
            if g is not None and tuple(g.shape) == r.shape
        ]
        row["vs_pillow_mean_abs"] = round(float(np.mean([d.mean() for d in diffs])), 3)
        row["vs_pillow_max_abs"] = int(max(d.max() for d in diffs))
        row["decoded_of_4"] = len(diffs)
    except Exception as err:  # noqa: BLE001 - reported, the other decoder still runs
        row = {"error": f"{type(err).__name__}: {err}"[:500]}
    return row


def _postprocess_at(res: int, batch: int, seconds: float, device: Any) -> dict[str, Any]:
    import numpy as np
    import torch

    from directsam.data.rle import mask_to_rle
    from directsam.inference.postprocess import boundary_rle_counts, pack_bits, pack_boundary

    gen = torch.Generator(device=device).manual_seed(0)
    probs = torch.rand(batch, res, res, generator=gen, device=device)
    row = {
        "pack_on_device_and_copy": timed(lambda: pack_boundary(probs, 0.5).cpu(), batch, seconds),
        "copy_bool_map": timed(lambda: (probs >= 0.5).cpu(), batch, seconds),
        "copy_float32_map": timed(lambda: probs.cpu(), batch, seconds),
    }
    yy, xx = np.mgrid[0:res, 0:res]
    lines = torch.from_numpy(((yy % 37 < 3) | (np.abs(xx - yy) % 53 < 3))[None])
    colmajor = pack_boundary(lines.float(), 0.5).numpy()[0]
    rowmajor = pack_bits(lines).numpy()[0]

    def rowmajor_rle() -> dict:
        bits = np.unpackbits(rowmajor, count=res * res).reshape(res, res)
        return mask_to_rle(bits.astype(bool))

    row["rle_from_packed_colmajor"] = timed(
        lambda: boundary_rle_counts(colmajor, res, res), 1, seconds / 2
    )
    row["rle_from_packed_rowmajor"] = timed(rowmajor_rle, 1, seconds / 2)
    return row


def postprocess_part(resolutions: list[int], batch: int, seconds: float) -> dict:
    import torch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    out: dict[str, Any] = {"device": str(device), "batch": batch}
    for res in resolutions:
        out[str(res)] = _postprocess_at(res, batch, seconds, device)
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sample", required=True, help="SA-1B folder sample (sa_*/sa_*.jpg)")
    p.add_argument("--resolutions", type=int, nargs="+", default=[1024, 1800])
    p.add_argument("--batch", type=int, default=32, help="images per decode call (32)")
    p.add_argument("--post-batch", type=int, default=8, help="maps per post-processing call (8)")
    p.add_argument("--seconds", type=float, default=3.0, help="timing window per figure (3)")
    p.add_argument("--output", default=None, help="also write the JSON result here")
    args = p.parse_args(argv)
    result = {
        "benchmark": "gpu_decode_throughput",
        "decode": decode_part(Path(args.sample), args.resolutions, args.batch, args.seconds),
        "postprocess": postprocess_part(args.resolutions, args.post_batch, args.seconds),
    }
    line = json.dumps(result)
    print(line)
    if args.output:
        Path(args.output).write_text(line + "\n")
    return result


if __name__ == "__main__":
    main()
