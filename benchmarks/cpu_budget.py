"""CPU budget per image and per stage, and the cores per GPU each labeling/training target needs.

Measures, on one core (torch/OpenCV threads 1; time.process_time, i.e. CPU-seconds, not wall),
per SA-1B-sized image (default 1500 x 2250 JPEG with ~100 masks from
``directsam.data.sample.make_sample``) and per model resolution:

- ``read``: the image and JSON bytes through ``directsam.data.sources.fs.read_uri`` (local
  disk, page cache warm: an object store adds network wait, little CPU);
- ``header``: the GPU decode path's CPU work instead of decode + resize:
  ``read_image_header`` (size, EXIF) + ``gpu_decodable`` (JPEG frame scan);
- ``decode``: ``decode_image`` (Pillow / libjpeg-turbo, EXIF, to RGB);
- ``resize``: ``resize_rgb`` to R x R (Pillow antialiased bilinear);
- ``target_label``: the labeling human boundary (thickness 9) + its COCO RLE;
- ``target_train``: the training target (thickness 3; no RLE);
- ``rle_pseudo``: the pseudo boundary's COCO RLE from the actor's packed bits, column-major
  (``postprocess.boundary_rle_counts``, today's path), and ``rle_pseudo_rowmajor``: the
  previous row-major bits + ``mask_to_rle``, and ``rle_pseudo_numpy_runs``: only the run
  boundaries of the unpacked bits by numpy, a floor for a numpy encoder (comparisons only);
- ``threshold_pack_cpu``: threshold + pack of a float32 R x R map by torch on the CPU (what the
  GPU does on the device; a cost only for CPU-device runs, not counted below);
- ``parquet``: ``block_table`` + ``write_block`` of a block of rows with both RLEs, per row.

Then cores per GPU = sum of the CPU stages of a job x the GPU's image rate, for the ANCHOR
rates of issue 16 (not measured here): labeling B5@1800 35 img/s and B0@1024 850 img/s (the
end-to-end targets), training B0@1024 121 img/s (the bare bf16 step on an H100). Each job with
the CPU decode path and with GPU decode (decode + resize replaced by ``header``; for training a
what-if: only the labeling actor decodes on the GPU today). Pseudo-boundary maps are stood in
for by the human boundary at R (thin lines, like a trained model's).

    python benchmarks/cpu_budget.py --output /tmp/cpu_budget.json            # ~1-2 min
    python benchmarks/cpu_budget.py --images 2 --repeats 1 --resolutions 64  # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Anchor image rates per GPU (issue 16; H100, random-init SegFormers, bf16). Not measured here.
ANCHORS = {
    "label_b5_1800": ("labeling B5 @ 1800 (target)", 1800, 35.0),
    "label_b0_1024": ("labeling B0 @ 1024 (target)", 1024, 850.0),
    "train_b0_1024": ("training B0 @ 1024 (bare step)", 1024, 121.0),
}
JOB_STAGES = {  # stages on the CPU side of each job, CPU decode path / GPU decode path
    "label": (
        ["read", "decode", "resize", "target_label", "rle_pseudo", "parquet"],
        ["read", "header", "target_label", "rle_pseudo", "parquet"],
    ),
    "train": (
        ["read", "decode", "resize", "target_train"],
        ["read", "header", "target_train"],
    ),
}


def cpu_seconds(fn: Callable[[], Any], repeats: int) -> float:
    """Median over ``repeats`` of the process CPU time of one ``fn()`` call (after a warm-up)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    times.sort()
    return times[len(times) // 2]


def make_images(folder: Path, n: int, height: int, width: int, objects: int) -> list[Path]:
    from directsam.data.sample import make_sample

    paths = []
    for k in range(n):
        root = make_sample(folder / f"u{k}", num_images=1, seed=k, kind="sa1b", height=height,
                           width=width, num_objects=objects)  # fmt: skip
        paths.append(next(Path(root).glob("sa_*/sa_1.jpg")))
    return paths


def measure(paths: list[Path], resolutions: list[int], repeats: int, rows: int) -> dict[str, Any]:
    """Per stage and resolution: median CPU-ms per image (mean over the images)."""
    import numpy as np
    import torch

    from directsam.data.decode import decode_image, read_image_header, resize_rgb
    from directsam.data.rle import mask_to_rle
    from directsam.data.sa1b import parse_sa1b_annotation
    from directsam.data.sources.fs import read_uri
    from directsam.data.targets import annotation_to_boundary
    from directsam.inference.gpu_decode import gpu_decodable
    from directsam.inference.postprocess import boundary_rle_counts, pack_bits, pack_boundary

    jpgs = [p.read_bytes() for p in paths]
    jsons = [p.with_suffix(".json").read_bytes() for p in paths]
    images = [decode_image(b) for b in jpgs]
    hws = [im.shape[:2] for im in images]
    per: dict[str, dict[str, float]] = {}
    info = {
        "image_hw": list(hws[0]),
        "jpeg_kb_mean": round(sum(map(len, jpgs)) / len(jpgs) / 1024, 1),
        "masks_mean": round(sum(len(parse_sa1b_annotation(j, "x")[1]) for j in jsons) / len(jsons), 1),
        "gpu_decodable": sum(gpu_decodable(b) for b in jpgs),
    }  # fmt: skip

    def each(fn: Callable[[int], Any]) -> float:
        """Mean over the images of the median CPU-ms of ``fn(image index)``."""
        total = sum(cpu_seconds(lambda i=i: fn(i), repeats) for i in range(len(paths)))
        return 1000 * total / len(paths)

    def both(i: int) -> None:
        read_uri(str(paths[i]))
        read_uri(str(paths[i].with_suffix(".json")))

    common = {
        "read": each(both),
        "header": each(lambda i: (read_image_header(jpgs[i]), gpu_decodable(jpgs[i]))),
        "decode": each(lambda i: decode_image(jpgs[i])),
    }

    def at(res: int) -> dict[str, float]:
        """The stages that depend on the resolution."""
        row = {"resize": each(lambda i: resize_rgb(images[i], res))}

        def label(i: int) -> str:
            b = annotation_to_boundary(jsons[i], "sa1b", hws[i], res, 9, "x")
            return mask_to_rle(b)["counts"]

        row["target_label"] = each(label)
        row["target_train"] = each(
            lambda i: annotation_to_boundary(jsons[i], "sa1b", hws[i], res, 3, "x")
        )
        maps = [annotation_to_boundary(j, "sa1b", hw, res, 3, "x") for j, hw in zip(jsons, hws)]
        colmajor = [pack_boundary(torch.from_numpy(m)[None].float(), 0.5).numpy()[0] for m in maps]
        rowmajor = [pack_bits(torch.from_numpy(m)[None]).numpy()[0] for m in maps]
        for m, c in zip(maps, colmajor):  # the two encoders agree byte for byte
            assert boundary_rle_counts(c, res, res) == mask_to_rle(m)["counts"]

        def rowmajor_rle(i: int) -> dict:
            bits = np.unpackbits(rowmajor[i], count=res * res).reshape(res, res)
            return mask_to_rle(bits.astype(bool))

        def numpy_runs(i: int) -> np.ndarray:
            # Only the run boundaries, no counts string: a floor for any numpy encoder.
            bits = np.unpackbits(colmajor[i], count=res * res)
            return np.flatnonzero(bits[1:] != bits[:-1])

        row["rle_pseudo"] = each(lambda i: boundary_rle_counts(colmajor[i], res, res))
        row["rle_pseudo_rowmajor"] = each(rowmajor_rle)
        row["rle_pseudo_numpy_runs"] = each(numpy_runs)
        probs = [torch.from_numpy(m.astype(np.float32) * 0.8)[None] for m in maps]
        row["threshold_pack_cpu"] = each(lambda i: pack_boundary(probs[i], 0.5))
        human = [label(i) for i in range(len(paths))]
        pseudo = [boundary_rle_counts(c, res, res) for c in colmajor]
        row["parquet"] = 1000 * parquet_seconds(human, pseudo, res, rows, repeats) / rows
        return row

    for res in resolutions:
        row = {**common, **at(res)}
        per[str(res)] = {k: round(v, 2) for k, v in row.items()}
    return {"info": info, "cpu_ms_per_image": per}


def parquet_seconds(
    human: list[str], pseudo: list[str], res: int, rows: int, repeats: int
) -> float:
    """CPU-s of building and atomically writing one block of ``rows`` labeled rows."""
    import shutil

    from directsam.labeling.writer import BlockPlan, block_table, rle_cell, write_block
    from directsam.schema import (
        CHECKPOINT,
        CHECKPOINT_SHA,
        DATASET,
        ERROR,
        HEIGHT,
        HUMAN_BOUNDARY,
        PSEUDO_BOUNDARY,
        RESOLUTION,
        SOURCE_URI,
        THICKNESS,  # fmt: skip
        THRESHOLD,
        WIDTH,
    )

    ids = tuple(f"sa_{k}" for k in range(rows))
    plan = BlockPlan(0, ids)
    table_rows = {
        image_id: {SOURCE_URI: f"s3://bucket/sa1b/sa_000000.tar::{image_id}.jpg", DATASET: "sa1b",
                   HEIGHT: 1500, WIDTH: 2250, ERROR: None,
                   PSEUDO_BOUNDARY: rle_cell(pseudo[k % len(pseudo)], res),
                   HUMAN_BOUNDARY: rle_cell(human[k % len(human)], res)}
        for k, image_id in enumerate(ids)
    }  # fmt: skip
    constants = {RESOLUTION: res, CHECKPOINT: "scratch:b5", CHECKPOINT_SHA: "scratch:b5:0",
                 THRESHOLD: 0.5, THICKNESS: 9}  # fmt: skip
    out = Path(tempfile.mkdtemp(prefix="cpu_budget_parquet_"))
    try:
        return cpu_seconds(lambda: write_block(str(out), block_table(plan, table_rows, constants), 0),
                           repeats)  # fmt: skip
    finally:
        shutil.rmtree(out, ignore_errors=True)


def cores_per_gpu(per: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """The arithmetic: sum of a job's CPU stages at its resolution x the anchor rate."""
    out = []
    for key, (label, res, rate) in ANCHORS.items():
        if str(res) not in per:
            continue
        ms = per[str(res)]
        job = key.split("_")[0]
        for path, stages in zip(("cpu_decode", "gpu_decode"), JOB_STAGES[job]):
            total = sum(ms[s] for s in stages)
            out.append({"job": label, "anchor_img_per_s": rate, "resolution": res,
                        "path": path, "stages": stages, "cpu_ms_per_image": round(total, 1),
                        "cores_per_gpu": round(total / 1000 * rate, 1)})  # fmt: skip
    return out


def markdown(result: dict[str, Any]) -> str:
    per = result["cpu_ms_per_image"]
    stages = list(next(iter(per.values())))
    res = list(per)
    lines = ["| stage | " + " | ".join(f"CPU-ms @ {r}" for r in res) + " |",
             "|---|" + "---|" * len(res)]  # fmt: skip
    lines += [f"| `{s}` | " + " | ".join(f"{per[r][s]:.2f}" for r in res) + " |" for s in stages]
    lines += ["", "| job (anchor rate per GPU) | path | CPU stages | CPU-ms / image | cores / GPU |",
              "|---|---|---|---|---|"]  # fmt: skip
    for row in result["cores_per_gpu"]:
        lines.append(f"| {row['job']} ({row['anchor_img_per_s']:g} img/s) | {row['path']} | "
                     f"{' + '.join(row['stages'])} | {row['cpu_ms_per_image']} | "
                     f"{row['cores_per_gpu']} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=4, help="distinct generated images (default 4)")
    p.add_argument("--image-size", type=int, nargs=2, default=(1500, 2250), metavar=("H", "W"))
    p.add_argument("--objects", type=int, default=48, help="objects per scene (48: ~100 masks)")
    p.add_argument("--resolutions", type=int, nargs="+", default=[1024, 1800])
    p.add_argument("--repeats", type=int, default=3, help="timed calls per stage, median (3)")
    p.add_argument("--parquet-rows", type=int, default=64, help="rows per written block (64)")
    p.add_argument("--output", default=None, help="also write the JSON result here")
    args = p.parse_args(argv)

    import cv2
    import torch
    from model_throughput import _cpu_name  # a sibling script: benchmarks/ is on sys.path

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    work = Path(tempfile.mkdtemp(prefix="cpu_budget_"))
    t0 = time.perf_counter()
    paths = make_images(work, args.images, *args.image_size, args.objects)
    result: dict[str, Any] = {
        "benchmark": "cpu_budget",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "host": platform.node(),
        "cpu": _cpu_name(),  # as model_throughput.py reports it
        "cpu_count": os.cpu_count(),
        "load_avg_1m_before": round(os.getloadavg()[0], 2),
        "images": args.images,
        "image_size": list(args.image_size),
        "repeats": args.repeats,
        "anchors": {k: {"what": v[0], "img_per_s": v[2]} for k, v in ANCHORS.items()},
    }
    result.update(measure(paths, args.resolutions, args.repeats, args.parquet_rows))
    result["cores_per_gpu"] = cores_per_gpu(result["cpu_ms_per_image"])
    result["load_avg_1m_after"] = round(os.getloadavg()[0], 2)
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    print(markdown(result), file=sys.stderr)
    line = json.dumps(result)
    print(line)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(line + "\n")
    return result


if __name__ == "__main__":
    main()
