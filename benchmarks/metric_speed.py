"""Effective contour recall: the per-token oracle vs `directsam.metrics`, on 1024 px scenes.

Each scene: prediction = 3 px boundaries of a random Voronoi partition with `--seeds` cells
(200+ tokens), GT = 2 px boundaries of an independent partition. Per image we check that both
give the same (num_tokens, recall) and time each the best of `--repeats` runs, the two
interleaved (oracle, ours, oracle, ours, ...) so that both see the same load on a shared box.
The headline figure is CPU time of this process with OpenCV on `--threads` threads (default 1),
which grows much less than wall clock when other processes share the cores; wall clock is
printed too. Prints one JSON line.

    .venv/bin/python benchmarks/metric_speed.py --images 5 --seeds 300
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.metrics.*

from directsam.metrics import effective_contour_recall  # noqa: E402
from tests.metrics.oracle import oracle_contour_recall  # noqa: E402
from tests.metrics.scenes import voronoi_scene  # noqa: E402


def best_of(fns, repeats: int) -> list[tuple[float, float, object]]:
    """Per function: (best CPU seconds, best wall seconds, result) over `repeats` rounds, each
    round calling every function once, in order."""
    best = [[float("inf"), float("inf"), None] for _ in fns]
    for _ in range(repeats):
        for slot, fn in zip(best, fns, strict=True):
            c0, t0 = time.process_time(), time.perf_counter()
            slot[2] = fn()
            slot[0] = min(slot[0], time.process_time() - c0)
            slot[1] = min(slot[1], time.perf_counter() - t0)
    return [tuple(slot) for slot in best]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--images", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=300, help="Voronoi cells of the prediction")
    parser.add_argument("--tolerance", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="cv2 threads (default 1)")
    args = parser.parse_args()

    import cv2

    cv2.setNumThreads(args.threads)

    rng = np.random.default_rng(args.seed)
    rows = []
    for _ in range(args.images):
        gt, pred = voronoi_scene(args.size, args.size, rng, pred_seeds=args.seeds, gt_seeds=60)
        effective_contour_recall(gt, pred, args.tolerance)  # warm-up
        (oracle_s, oracle_wall, expected), (ours_s, ours_wall, ours) = best_of(
            [
                lambda: oracle_contour_recall(gt, pred, args.tolerance),  # noqa: B023
                lambda: effective_contour_recall(gt, pred, args.tolerance),  # noqa: B023
            ],
            args.repeats,
        )
        assert ours == expected, (ours, expected)
        rows.append(
            {
                "tokens": ours[0],
                "recall": round(ours[1], 6),
                "oracle_s": round(oracle_s, 4),
                "ours_s": round(ours_s, 4),
                "speedup": round(oracle_s / ours_s, 1),
                "oracle_wall_s": round(oracle_wall, 4),
                "ours_wall_s": round(ours_wall, 4),
            }
        )
    speedups = [r["speedup"] for r in rows]
    print(
        json.dumps(
            {
                "benchmark": "metric_speed",
                "size": args.size,
                "tolerance": args.tolerance,
                "repeats": args.repeats,
                "cv2_threads": cv2.getNumThreads(),
                "timing": "best-of-repeats CPU seconds, interleaved (wall in images[*]_wall_s)",
                "equal": True,
                "tokens_median": statistics.median(r["tokens"] for r in rows),
                "oracle_s_median": statistics.median(r["oracle_s"] for r in rows),
                "ours_s_median": statistics.median(r["ours_s"] for r in rows),
                "speedup_median": statistics.median(speedups),
                "speedup_min": min(speedups),
                "images": rows,
            }
        )
    )


if __name__ == "__main__":
    main()
