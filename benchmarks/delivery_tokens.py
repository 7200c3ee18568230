"""Token records from a label map: ``labels_to_records`` vs a plain per-token loop.

Measures the CPU cost that ``directsam.tokenize`` / ``directsam segment`` add after the model:
label map -> COCO RLE, area, bbox, contour confidence and inner point for every token. The
reference loop encodes ``labels == k`` with ``mask_to_rle`` per token (what SAM's AMG does) and
computes the same fields with numpy per mask. Both give identical RLE strings (checked).

    .venv/bin/python benchmarks/delivery_tokens.py [--size 1024] [--tokens 256] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def synthetic_probs(size: int, tokens: int, seed: int = 0) -> np.ndarray:
    """A Voronoi partition with 1-2 px high-probability edges: ``tokens`` cells (float32)."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    seeds = np.zeros((size, size), dtype=np.int32)
    ys, xs = rng.integers(0, size, (2, tokens))
    seeds[ys, xs] = np.arange(1, tokens + 1)
    _, (iy, ix) = ndimage.distance_transform_edt(seeds == 0, return_indices=True)
    cells = seeds[iy, ix]
    from directsam.inference.denoise import label_edges

    edge = label_edges(cells)  # both sides of every change: separates 8-connected cells
    return np.where(edge, 0.9, 0.1).astype(np.float32) + rng.uniform(0, 0.05, cells.shape).astype(
        np.float32
    )


def reference_records(labels: np.ndarray, probs: np.ndarray) -> list[dict]:
    from scipy import ndimage

    from directsam.data.rle import mask_to_rle
    from directsam.inference.tokens import TOKEN_CONNECTIVITY, neighbourhood

    near = neighbourhood(TOKEN_CONNECTIVITY)
    out = []
    for k in range(1, int(labels.max()) + 1):
        mask = labels == k
        ys, xs = np.nonzero(mask)
        ring = ndimage.binary_dilation(mask, structure=near) & (labels == 0)
        dist = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
        y, x = np.unravel_index(np.argmax(dist), dist.shape)
        out.append(
            {
                "segmentation": mask_to_rle(mask),
                "area": int(mask.sum()),
                "bbox": [int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1],
                "boundary_confidence": float(probs[ring].mean()) if ring.any() else None,
                "point_coords": [[float(x), float(y)]],
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from directsam.data.rle import mask_to_rle
    from directsam.inference.tokens import labels_to_records, labels_to_rles, probs_to_tokens

    probs = synthetic_probs(args.size, args.tokens)
    labels, n = probs_to_tokens(probs, 0.5)
    ours = rles = float("inf")
    for _ in range(args.repeats):
        t = time.perf_counter()
        records = labels_to_records(labels, probs)
        ours = min(ours, time.perf_counter() - t)
        t = time.perf_counter()
        labels_to_rles(labels)
        rles = min(rles, time.perf_counter() - t)
    # The reference loops are slow: timed once.
    t = time.perf_counter()
    per_mask = [mask_to_rle(labels == k) for k in range(1, n + 1)]
    ref_rles = time.perf_counter() - t
    t = time.perf_counter()
    expected = reference_records(labels, probs)
    ref = time.perf_counter() - t
    assert [r["segmentation"] for r in records] == [r["segmentation"] for r in expected] == per_mask
    print(
        f"size {args.size}x{args.size}, {n} tokens: RLE only: labels_to_rles {rles * 1e3:.1f} ms "
        f"vs mask_to_rle per token {ref_rles * 1e3:.1f} ms ({ref_rles / rles:.1f}x); full "
        f"records: labels_to_records {ours * 1e3:.1f} ms vs per-token loop {ref * 1e3:.1f} ms "
        f"({ref / ours:.1f}x); ours best of {args.repeats}, loops once"
    )


if __name__ == "__main__":
    main()
