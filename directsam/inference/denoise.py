"""Token label map -> cleaner label map: small tokens merged away, count capped, contour redrawn.

Following the DirectSAM authors' contour denoiser: tokens under ``min_area`` pixels, and the
smallest tokens beyond ``max_tokens``, are merged into the surviving token that their dilation
(disk of ``dilate_radius``) overlaps most. The boundary is then redrawn as the line where
labels change, and a ``2 x dilate_radius`` band along the image border is boundary.
"""

from __future__ import annotations

import numpy as np


def relabel_by_area(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Renumber the non-zero labels of a map ``1..N`` by area, largest first.

    Labels that do not occur are dropped; ties keep the order of the old label value.

    Args:
        labels: non-negative integer ``(H, W)``; 0 is kept as 0.

    Returns:
        (int32 ``(H, W)`` labels, ``N``).
    """
    labels = np.asarray(labels)
    if labels.size == 0:
        return labels.astype(np.int32), 0
    areas = np.bincount(labels.ravel(), minlength=1)
    areas[0] = 0
    present = np.flatnonzero(areas)
    # Stable sort on -area keeps ascending old labels among equal areas.
    order = present[np.argsort(-areas[present], kind="stable")]
    lut = np.zeros(areas.shape[0], dtype=np.int32)
    lut[order] = np.arange(1, order.size + 1, dtype=np.int32)
    return lut[labels], int(order.size)


def disk_kernel(radius: int) -> np.ndarray:
    """uint8 ``(2r+1, 2r+1)`` disk ``x^2 + y^2 <= r^2`` (the reference denoiser's kernel)."""
    y, x = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    return (x * x + y * y <= radius * radius).astype(np.uint8)


def merge_targets(labels: np.ndarray, num_keep: int, radius: int) -> np.ndarray:
    """Lookup table sending every token ``> num_keep`` to the kept token it touches most.

    Args:
        labels: int32 ``(H, W)`` with tokens ``1..N`` sorted by area (so ``1..num_keep`` are
            the survivors) and 0 for boundary.
        num_keep: number of surviving tokens.
        radius: dilation radius used to find neighbours across the boundary line.

    Returns:
        int32 ``(N + 1,)`` lookup table: identity for ``0..num_keep``; for a merged token the
        survivor whose pixels overlap its dilated mask most (ties: the larger survivor), or 0
        when no survivor lies within ``radius``.
    """
    import cv2
    from scipy import ndimage

    n = int(labels.max()) if labels.size else 0
    lut = np.arange(n + 1, dtype=np.int32)
    if n <= num_keep:
        return lut
    kernel = disk_kernel(radius)
    height, width = labels.shape
    boxes = ndimage.find_objects(labels, n)
    for label in range(num_keep + 1, n + 1):
        box = boxes[label - 1]
        if box is None:
            continue
        # Work in the token's bounding box grown by the radius: dilation cannot reach further.
        y0, y1 = max(box[0].start - radius, 0), min(box[0].stop + radius, height)
        x0, x1 = max(box[1].start - radius, 0), min(box[1].stop + radius, width)
        window = labels[y0:y1, x0:x1]
        grown = cv2.dilate((window == label).astype(np.uint8), kernel).astype(bool)
        touched = window[grown]
        touched = touched[(touched > 0) & (touched <= num_keep)]
        if touched.size:
            counts = np.bincount(touched, minlength=num_keep + 1)
            lut[label] = int(np.argmax(counts))  # first maximum = largest survivor
        else:
            lut[label] = 0
    return lut


def label_edges(labels: np.ndarray) -> np.ndarray:
    """bool ``(H, W)``: pixels whose 3x3 neighbourhood holds more than one label.

    Both sides of every label change are marked, so the line is 4-connected and separates
    8-connected regions (``probs_to_tokens`` finds the same tokens again).
    """
    padded = np.pad(labels, 1, mode="edge")
    height, width = labels.shape
    edge = np.zeros(labels.shape, dtype=bool)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            if dy == 1 and dx == 1:
                continue
            edge |= padded[dy : dy + height, dx : dx + width] != labels
    return edge


def denoise_tokens(
    labels: np.ndarray,
    min_area: int = 0,
    max_tokens: int | None = 128,
    dilate_radius: int = 5,
) -> np.ndarray:
    """Merge small tokens, cap the token count and redraw the contour.

    Args:
        labels: integer ``(H, W)``; 0 = boundary, ``> 0`` = tokens (any numbering).
        min_area: tokens with fewer pixels are merged into a neighbour.
        max_tokens: keep at most this many tokens (the largest); ``None`` = no cap.
        dilate_radius: neighbour search radius; the image-border band is twice this wide.

    Returns:
        int32 ``(H, W)``: 0 = redrawn contour (label changes plus the border band), tokens
        ``1..M`` by area descending. At least one token survives when the input has any.
        Pixels of the old boundary join the nearest token before the contour is redrawn.
    """
    from scipy import ndimage

    if labels.ndim != 2:
        raise ValueError(f"expected (H, W) labels, got shape {labels.shape}")
    if min_area < 0:
        raise ValueError(f"min_area must be >= 0, got {min_area}")
    if max_tokens is not None and max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1 or None, got {max_tokens}")
    if dilate_radius < 1:
        raise ValueError(f"dilate_radius must be >= 1, got {dilate_radius}")
    ranked, n = relabel_by_area(labels)
    if n == 0:
        return np.zeros(labels.shape, dtype=np.int32)
    areas = np.bincount(ranked.ravel(), minlength=n + 1)[1:]
    num_keep = int(np.count_nonzero(areas >= min_area))  # a prefix: areas are descending
    if max_tokens is not None:
        num_keep = min(num_keep, max_tokens)
    num_keep = max(num_keep, 1)
    merged = merge_targets(ranked, num_keep, dilate_radius)[ranked]

    # Every unassigned pixel (old boundary, dropped tokens) takes the nearest token's label,
    # so the new contour runs midway through the old boundary band.
    nearest = ndimage.distance_transform_edt(
        merged == 0, return_distances=False, return_indices=True
    )
    filled = merged[nearest[0], nearest[1]]
    out = np.where(label_edges(filled), 0, filled).astype(np.int32)
    band = 2 * dilate_radius
    out[:band, :] = 0
    out[-band:, :] = 0
    out[:, :band] = 0
    out[:, -band:] = 0
    return relabel_by_area(out)[0]
