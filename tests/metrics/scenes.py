"""Seeded synthetic boundary scenes for the metric tests and `benchmarks/metric_speed.py`.

A scene is a pair of bool HxW boundary maps: the prediction is the (thickened) boundary of one
random Voronoi-like partition, the ground truth the boundary of another one, so that recall is
strictly between 0 and 1 and the number of tokens is controlled by the number of seeds.
"""

from __future__ import annotations

import numpy as np


def voronoi_labels(h: int, w: int, num_seeds: int, rng: np.random.Generator) -> np.ndarray:
    """int32 HxW partition: each pixel takes the index of its nearest random seed (L2, ties by index).

    Computed block-wise over rows so memory stays at ~ block x w x num_seeds floats.
    """
    seeds = rng.uniform(0, (h, w), size=(num_seeds, 2)).astype(np.float32)
    labels = np.empty((h, w), dtype=np.int32)
    xs = np.arange(w, dtype=np.float32)
    block = max(1, 4_000_000 // max(1, w * num_seeds))
    for y0 in range(0, h, block):
        ys = np.arange(y0, min(h, y0 + block), dtype=np.float32)
        dy = (ys[:, None] - seeds[None, :, 0]) ** 2  # (b, n)
        dx = (xs[:, None] - seeds[None, :, 1]) ** 2  # (w, n)
        labels[y0 : y0 + len(ys)] = np.argmin(dy[:, None, :] + dx[None, :, :], axis=-1)
    return labels


def labels_to_boundary(labels: np.ndarray, thickness: int) -> np.ndarray:
    """bool HxW: pixels whose right or lower neighbour has another label, dilated to `thickness`."""
    import cv2

    edge = np.zeros(labels.shape, dtype=np.uint8)
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    if thickness > 1:
        kernel = np.ones((thickness, thickness), dtype=np.uint8)
        edge = cv2.dilate(edge, kernel)
    return edge.astype(bool)


def voronoi_scene(
    h: int,
    w: int,
    rng: np.random.Generator,
    pred_seeds: int = 250,
    gt_seeds: int = 60,
    pred_thickness: int = 3,
    gt_thickness: int = 2,
    noise: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """(gt, pred) bool HxW boundaries from two independent random partitions.

    `noise` flips that fraction of prediction pixels to boundary, which creates isolated
    pixels and small holes (single-pixel tokens after skeletonisation).
    """
    gt = labels_to_boundary(voronoi_labels(h, w, gt_seeds, rng), gt_thickness)
    pred = labels_to_boundary(voronoi_labels(h, w, pred_seeds, rng), pred_thickness)
    if noise > 0:
        pred |= rng.random((h, w)) < noise
    return gt, pred


def random_blob_scene(
    h: int, w: int, rng: np.random.Generator, density: float
) -> tuple[np.ndarray, np.ndarray]:
    """(gt, pred) bool HxW: smoothed random noise thresholded, giving irregular thick/thin blobs."""
    import cv2

    def blobs(d: float) -> np.ndarray:
        field = rng.random((h, w)).astype(np.float32)
        k = int(rng.integers(1, 4)) * 2 + 1
        field = cv2.GaussianBlur(field, (k, k), 0)
        return field > np.quantile(field, 1.0 - d)

    return blobs(min(0.5, density * 0.5 + 0.02)), blobs(density)
