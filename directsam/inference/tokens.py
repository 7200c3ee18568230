"""Boundary probabilities -> tokens, and the pure label-map helpers built on them.

A token ("subobject") is a connected component (`TOKEN_CONNECTIVITY`: 8-connected) of the pixels
whose boundary probability is below the threshold. Labels are ``int32``: 0 marks boundary
pixels, tokens are ``1..N`` sorted by area (largest first; equal areas keep raster order of
their first pixel). From a label map: masks, per-token stats, COCO RLEs, contour confidence,
inner points and SAM-AMG-style records (what ``directsam.tokenize`` returns).

The metric's tokens are a different thing: 4-connected components after skeletonisation
(`directsam.metrics.SKELETON_TOKEN_CONNECTIVITY`, DESIGN.md Conventions).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

# The denoiser owns relabel_by_area (only it renumbers maps); importing it from here keeps the
# token helpers in one namespace and the dependency one-way (tokens -> denoise).
from directsam.inference.denoise import denoise_tokens, relabel_by_area  # noqa: F401

TOKEN_CONNECTIVITY = 8
"""Inference tokens are the 8-connected components of the pixels below the threshold."""


def neighbourhood(connectivity: int) -> npt.NDArray[np.bool_]:
    """bool 3x3 neighbourhood of a connectivity: the cross (4) or the full square (8).

    As scipy's ``structure`` it gives the same components as cv2's ``connectivity``.
    """
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity!r}")
    kernel = np.ones((3, 3), dtype=bool)
    if connectivity == 4:
        kernel[::2, ::2] = False  # corners off
    return kernel


def neighbour_offsets(connectivity: int) -> list[tuple[int, int]]:
    """``(dy, dx)`` of a pixel's neighbours under ``connectivity``, in raster order."""
    ys, xs = np.nonzero(neighbourhood(connectivity))
    return [(int(y) - 1, int(x) - 1) for y, x in zip(ys, xs, strict=True) if (y, x) != (1, 1)]


def probs_to_tokens(probs: np.ndarray, threshold: float) -> tuple[np.ndarray, int]:
    """Threshold boundary probabilities and label the regions between boundaries.

    Args:
        probs: float ``(H, W)`` boundary probabilities in [0, 1].
        threshold: pixels with ``probs >= threshold`` are boundary.

    Returns:
        (labels int32 ``(H, W)``: 0 = boundary, ``1..N`` = tokens by area descending
        (ties: first pixel in raster order), ``N``).
    """
    import cv2

    if probs.ndim != 2:
        raise ValueError(f"expected (H, W) probabilities, got shape {probs.shape}")
    inside = (np.asarray(probs) < threshold).astype(np.uint8)
    # cv2 numbers components in raster order of their first pixel: a deterministic tie-break.
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        inside, connectivity=TOKEN_CONNECTIVITY, ltype=cv2.CV_32S
    )
    areas = stats[:, cv2.CC_STAT_AREA].astype(np.int64)
    areas[0] = 0  # background component of cv2 = our boundary pixels
    order = 1 + np.argsort(-areas[1:], kind="stable")
    lut = np.zeros(count, dtype=np.int32)
    lut[order] = np.arange(1, count, dtype=np.int32)
    return lut[labels], count - 1


def labels_to_masks(labels: np.ndarray) -> np.ndarray:
    """One boolean mask per token.

    Args:
        labels: integer ``(H, W)``, 0 = boundary, tokens ``1..N``.

    Returns:
        bool ``(N, H, W)``; mask ``i`` is ``labels == i + 1``.
    """
    n = int(labels.max()) if labels.size else 0
    return labels[None, :, :] == np.arange(1, n + 1, dtype=labels.dtype)[:, None, None]


def token_stats(labels: np.ndarray, probs: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-token area, bounding box and mean boundary probability.

    Args:
        labels: integer ``(H, W)``, 0 = boundary, tokens ``1..N``.
        probs: optional float ``(H, W)`` boundary probabilities.

    Returns:
        ``{"area": int64 (N,), "bbox_xywh": int32 (N, 4), "mean_prob": float32 (N,)}``
        (``mean_prob`` only when ``probs`` is given; NaN for labels that do not occur;
        an absent label also gets area 0 and bbox ``[0, 0, 0, 0]``).
    """
    from scipy import ndimage

    n = int(labels.max()) if labels.size else 0
    flat = labels.ravel()
    area = np.bincount(flat, minlength=n + 1)[1:].astype(np.int64)
    bbox = np.zeros((n, 4), dtype=np.int32)
    for i, sl in enumerate(ndimage.find_objects(labels.astype(np.int32, copy=False), n)):
        if sl is not None:
            ys, xs = sl
            bbox[i] = (xs.start, ys.start, xs.stop - xs.start, ys.stop - ys.start)
    out = {"area": area, "bbox_xywh": bbox}
    if probs is not None:
        sums = np.bincount(flat, weights=np.asarray(probs, np.float64).ravel(), minlength=n + 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out["mean_prob"] = (sums[1:] / area).astype(np.float32)
    return out


def labels_to_rles(labels: npt.NDArray[np.integer]) -> list[dict[str, Any]]:
    """COCO compressed RLE of every token of a label map, without materialising N masks.

    Args:
        labels: integer ``(H, W)``, 0 = boundary, tokens ``1..N``.

    Returns:
        ``N`` dicts ``{"size": [H, W], "counts": str}``; entry ``i`` encodes ``labels == i + 1``
        exactly as :func:`directsam.data.rle.mask_to_rle` would (same string).
    """
    from pycocotools import mask as mask_utils

    h, w = labels.shape
    n = int(labels.max()) if labels.size else 0
    if n == 0:
        return []
    # Runs of equal labels along the column-major (COCO) order, grouped by label.
    flat = np.asarray(labels).ravel(order="F")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts = np.concatenate(([0], change))
    ends = np.concatenate((change, [flat.size]))
    run_labels = flat[starts]
    order = np.argsort(run_labels, kind="stable")
    bounds = np.searchsorted(run_labels[order], np.arange(1, n + 2))
    out = []
    for k in range(n):
        idx = order[bounds[k] : bounds[k + 1]]
        s, e = starts[idx], ends[idx]
        counts = np.empty(2 * s.size, dtype=np.int64)
        counts[0::2] = s - np.concatenate(([0], e[:-1]))  # zeros before each run
        counts[1::2] = e - s
        if e.size and e[-1] < flat.size:
            counts = np.concatenate((counts, [flat.size - e[-1]]))
        rle = mask_utils.frPyObjects({"size": [h, w], "counts": counts.tolist()}, h, w)
        out.append({"size": [h, w], "counts": rle["counts"].decode("ascii")})
    return out


def contour_confidence(
    labels: npt.NDArray[np.integer], probs: npt.NDArray[np.floating]
) -> np.ndarray:
    """Mean boundary probability on each token's enclosing contour.

    The contour of a token is the set of boundary pixels (label 0) adjacent to it in the token
    connectivity (8-adjacent: the pixels that would join the token were they not boundary);
    each is counted once per token it touches.

    Args:
        labels: integer ``(H, W)``, 0 = boundary, tokens ``1..N``.
        probs: float ``(H, W)`` boundary probabilities in [0, 1].

    Returns:
        float64 ``(N,)``; NaN for a token with no boundary pixel next to it (a token that only
        meets the image border).
    """
    h, w = labels.shape
    n = int(labels.max()) if labels.size else 0
    idx = np.flatnonzero(labels.ravel() == 0)
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    if idx.size == 0:
        return np.full(n, np.nan)
    padded = np.pad(labels, 1, constant_values=0)
    ys, xs = np.divmod(idx, w)
    keys = []
    for dy, dx in neighbour_offsets(TOKEN_CONNECTIVITY):
        nb = padded[ys + 1 + dy, xs + 1 + dx]
        hit = nb > 0
        keys.append(idx[hit].astype(np.int64) * (n + 1) + nb[hit])
    pairs = np.unique(np.concatenate(keys))
    pix, lab = np.divmod(pairs, n + 1)
    sums = np.bincount(lab, weights=np.asarray(probs, np.float64).ravel()[pix], minlength=n + 1)
    counts = np.bincount(lab, minlength=n + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sums / counts)[1:]


def inner_points_xy(labels: npt.NDArray[np.integer]) -> np.ndarray:
    """float64 ``(N, 2)``: per token the ``(x, y)`` of its pixel farthest from any other label."""
    from scipy import ndimage

    n = int(labels.max()) if labels.size else 0
    if n == 0:
        return np.zeros((0, 2))
    dist = ndimage.distance_transform_edt(np.pad(labels > 0, 1))[1:-1, 1:-1]
    pos = ndimage.maximum_position(dist, labels, index=np.arange(1, n + 1))
    return np.array([(x, y) for y, x in pos], dtype=np.float64).reshape(n, 2)


def labels_to_records(
    labels: npt.NDArray[np.integer], probs: npt.NDArray[np.floating]
) -> list[dict[str, Any]]:
    """SAM-AMG-style records for every token of a label map, largest first.

    Args:
        labels: integer ``(H, W)``, 0 = boundary, tokens ``1..N`` sorted by area descending.
        probs: float ``(H, W)`` boundary probabilities the labels came from.

    Returns:
        ``N`` dicts: ``segmentation`` (COCO RLE at ``H x W``), ``area`` (int pixels), ``bbox``
        (``[x, y, w, h]`` ints), ``boundary_confidence`` (float, see
        :func:`contour_confidence`; None when NaN), ``point_coords`` (``[[x, y]]``, the
        token's innermost pixel: a valid SAM point prompt), ``crop_box`` (``[0, 0, W, H]``).
    """
    h, w = labels.shape
    stats = token_stats(labels)
    conf = contour_confidence(labels, probs)
    points = inner_points_xy(labels)
    records = []
    for i, rle in enumerate(labels_to_rles(labels)):
        c = float(conf[i])
        records.append(
            {
                "segmentation": rle,
                "area": int(stats["area"][i]),
                "bbox": [int(v) for v in stats["bbox_xywh"][i]],
                "boundary_confidence": None if c != c else round(c, 6),
                "point_coords": [[float(points[i, 0]), float(points[i, 1])]],
                "crop_box": [0, 0, int(w), int(h)],
            }
        )
    return records


def probs_to_token_output(
    probs: npt.NDArray[np.floating],
    threshold: float,
    max_tokens: int | None = None,
    min_area: int | None = None,
) -> dict[str, Any]:
    """One image's probabilities -> ``{"masks": records, "label_map": int32 (H, W)}``.

    Without ``max_tokens``/``min_area`` the tokens are exactly the 8-connected components of
    ``probs < threshold``; with either, the label map goes through
    :func:`directsam.inference.denoise_tokens` (small tokens merged, count capped, contour
    redrawn).
    """
    labels, _ = probs_to_tokens(probs, threshold)
    if max_tokens is not None or min_area is not None:
        labels = denoise_tokens(labels, min_area or 0, max_tokens)
    return {"masks": labels_to_records(labels, probs), "label_map": labels.astype(np.int32)}
