"""Segment masks or label maps -> boundary target (bool HxW), by the DESIGN.md band definition.

Definition (DESIGN.md, Geometry). The band of thickness t around the edges of a mask M is
``dilate(M, K_t) - erode(M, K_t)`` with cv2 semantics (window of pixel q = ``q + d - anchor``
for d in K_t, anchor = (t//2, t//2), pixels outside the image ignored), where K_t is a t x t
square for t <= 3 and a filled disk of diameter t centred at t//2 for t > 3; the image border
band is t pixels wide. So a pixel is in M's band when its window holds pixels both inside and
outside M.

* :func:`label_map_to_boundary`: union over labels of each label's band, i.e. the window holds
  two or more labels; plus the border band.
* :func:`masks_to_boundary`: each mask is first resized to the output size with nearest
  neighbour (:func:`directsam.data.decode.nearest_indices`), then the union of every mask's own
  band plus the border band. Overlapping masks keep all their boundaries (the seed summed
  masks into one label map, which loses some).

How it is computed (cheaply). Every window row is an interval that contains the anchor column,
so the window clipped to the image is 4-connected, and "the window holds two values" equals
"the window holds a 4-adjacent pair of differing pixels". Hence the union of all bands is
``dilate(EH, K_h) | dilate(EV, K_v)``, where EH / EV mark horizontal / vertical neighbour pairs
that differ (at the pair's first pixel) in any mask or label, and K_h = K ∩ (K shifted one
column left), K_v likewise for rows: two dilations, however many masks or labels.

For RLEs, :func:`masks_to_boundary` never decodes a full-resolution mask. It packs up to 64
masks into the bits of a uint64 image at the output size, sampled straight from the runs: each
run end flips its mask's bit at the first sampled pixel below it, and an XOR scan down the
columns replays the flips. Two pixels then differ in some mask exactly when their words differ,
so EH / EV are word comparisons. Tests check exact equality with the per-mask cv2 reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

from directsam.data.decode import _size_hw, nearest_indices
from directsam.data.rle import _rle_size, rles_to_runs


@lru_cache(maxsize=64)
def _band_kernel_cached(thickness: int) -> np.ndarray:
    t = thickness
    if t <= 3:
        k = np.ones((t, t), dtype=np.uint8)
    else:
        # Same pixels as the seed's cv2.circle(kernel, (c, c), c, 1, -1) for every t.
        c = t // 2
        y, x = np.mgrid[:t, :t]
        k = (((y - c) ** 2 + (x - c) ** 2) <= c * c).astype(np.uint8)
    k.setflags(write=False)
    return k


def _check_thickness(thickness: int) -> int:
    if isinstance(thickness, bool) or not isinstance(thickness, (int, np.integer)) or thickness < 1:
        raise ValueError(f"thickness must be an int >= 1, got {thickness!r}")
    return int(thickness)


def band_kernel(thickness: int) -> npt.NDArray[np.uint8]:
    """Structuring element K_t: uint8 t x t, a square for t <= 3, a filled disk otherwise.

    The disk holds the pixels within distance t//2 of (t//2, t//2) (for even t it is clipped
    at the bottom/right edge, as in the seed). The anchor is (t//2, t//2), cv2's default.
    """
    return _band_kernel_cached(_check_thickness(thickness)).copy()


def border_band(h: int, w: int, thickness: int) -> npt.NDArray[np.bool_]:
    """bool HxW, True in the outermost ``thickness`` rows and columns."""
    t = _check_thickness(thickness)
    out = np.zeros((h, w), dtype=bool)
    out[:t, :] = out[-t:, :] = True
    out[:, :t] = out[:, -t:] = True
    return out


@lru_cache(maxsize=64)
def _pair_kernels(thickness: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(K_h, K_v): offsets whose window covers a horizontal / vertical pixel pair.

    K_h[y, x] = K[y, x] & K[y, x + 1]: with the pair's first pixel at p, q's window holds both
    pixels exactly when p = q + d - anchor for some d in K_h. None when empty (t = 1).
    """
    k = _band_kernel_cached(thickness).astype(bool)
    kh = np.zeros_like(k)
    kh[:, :-1] = k[:, :-1] & k[:, 1:]
    kv = np.zeros_like(k)
    kv[:-1, :] = k[:-1, :] & k[1:, :]
    as_u8 = [m.astype(np.uint8) if m.any() else None for m in (kh, kv)]
    return as_u8[0], as_u8[1]


def _pairs_to_band(
    eh: npt.NDArray[np.bool_], ev: npt.NDArray[np.bool_], thickness: int
) -> npt.NDArray[np.bool_]:
    """Union of bands from differing-neighbour maps (both HxW, marked at the pair's first
    pixel), plus the border band."""
    import cv2

    h, w = eh.shape
    kh, kv = _pair_kernels(thickness)
    anchor = (thickness // 2, thickness // 2)
    out = border_band(h, w, thickness)
    # cv2 ignores out-of-image pixels in dilate by default (border value = -inf), as required.
    if kh is not None:
        out |= cv2.dilate(eh.view(np.uint8), kh, anchor=anchor).view(bool)
    if kv is not None:
        out |= cv2.dilate(ev.view(np.uint8), kv, anchor=anchor).view(bool)
    return out


def label_map_to_boundary(label_map: npt.ArrayLike, thickness: int) -> npt.NDArray[np.bool_]:
    """Boundary of a label map: pixels whose K_t window holds two or more labels, plus the
    border band.

    Equals the union over labels of ``dilate(label == l, K_t) - erode(label == l, K_t)`` (the
    seed's per-label loop) at a cost independent of the number of labels.

    Args:
        label_map: integer (or bool) HxW labels, any values; resize it first with
            :func:`directsam.data.decode.resize_label_map` to get a target at model size.
        thickness: band thickness t >= 1 in pixels.

    Returns:
        bool HxW.
    """
    t = _check_thickness(thickness)
    labels = np.asarray(label_map)
    if labels.ndim != 2:
        raise ValueError(f"label_map must be 2-D HxW, got shape {labels.shape}")
    h, w = labels.shape
    eh = np.zeros((h, w), dtype=bool)
    ev = np.zeros((h, w), dtype=bool)
    np.not_equal(labels[:, :-1], labels[:, 1:], out=eh[:, :-1])
    np.not_equal(labels[:-1, :], labels[1:, :], out=ev[:-1, :])
    return _pairs_to_band(eh, ev, t)


def _distinct(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Sorted distinct values of a non-decreasing index array and, if it repeats, the inverse."""
    if len(idx) < 2 or (idx[1:] > idx[:-1]).all():
        return idx, None
    values, inverse = np.unique(idx, return_inverse=True)
    return values, inverse.reshape(-1)


def _rle_planes_t(
    runs: np.ndarray,
    lengths: np.ndarray,
    h: int,
    w: int,
    rows: np.ndarray,
    cols: np.ndarray,
) -> npt.NDArray[np.uint64]:
    """Nearest-sampled values of up to 64 RLE masks packed as bit planes, transposed.

    Args:
        runs, lengths: validated runs of M <= 64 masks of size h x w (concatenated; runs per
            mask), column-major as COCO stores them.
        rows, cols: strictly increasing source rows / columns to sample.

    Returns:
        uint64 (len(cols), len(rows)): bit m of [j, i] is mask m at (rows[i], cols[j]). The
        layout is column-major like the RLEs, so the scan down the rows is contiguous.
    """
    m, hw = len(lengths), h * w
    n_r, n_c = len(rows), len(cols)
    owner = np.repeat(np.arange(m, dtype=np.int64), lengths)
    # Every mask's runs sum to h*w, so the running sum over all masks is mask m's run ends
    # shifted by m*h*w; each run end inside the image flips that mask's value at that pixel.
    ends = np.cumsum(runs)
    local = ends - owner * hw
    flip = local < hw
    fc, fr = np.divmod(local[flip], h)
    jj = np.searchsorted(cols, fc, "left")
    ii = np.searchsorted(rows, fr, "left")  # first sampled row at or below the flip
    ok = (jj < n_c) & (ii > 0) & (ii < n_r)
    ok[ok] &= cols[jj[ok]] == fc[ok]  # flips in unsampled columns never show
    planes = np.zeros((n_c, n_r), dtype=np.uint64)
    bits = np.left_shift(np.uint64(1), owner[flip][ok].astype(np.uint64))
    np.bitwise_xor.at(planes.reshape(-1), jj[ok] * n_r + ii[ok], bits)
    # Start each column with every mask's value at the first sampled row: the parity of the
    # number of that mask's run ends at or before the pixel. The XOR scan then replays flips.
    first_pixel = cols * h + rows[0]
    queries = first_pixel[None, :] + (np.arange(m, dtype=np.int64) * hw)[:, None]
    count = np.searchsorted(ends, queries, "right") - (np.cumsum(lengths) - lengths)[:, None]
    start_bits = (count & 1).astype(np.uint64) << np.arange(m, dtype=np.uint64)[:, None]
    planes[:, 0] = np.bitwise_or.reduce(start_bits, axis=0)
    np.bitwise_xor.accumulate(planes, axis=1, out=planes)
    return planes


def masks_to_boundary(
    rles_or_masks: Sequence[dict[str, Any] | np.ndarray] | np.ndarray,
    out_size: int | tuple[int, int],
    thickness: int,
    name: str = "",
) -> npt.NDArray[np.bool_]:
    """Boundary target of overlapping masks at the output resolution.

    Each mask is resized to the output size with nearest neighbour, then the target is the
    union of every mask's own band (``dilate - erode`` with K_t) plus the border band (see the
    module docstring). RLEs are never decoded at full resolution: the cost grows with the
    number of runs and the output size, not with the source size.

    Args:
        rles_or_masks: COCO RLE dicts (compressed or uncompressed counts; any source size,
            typically the image's) and/or bool HxW arrays; an N x H x W array also works.
        out_size: output side (square target, as the model sees it) or ``(height, width)``.
        thickness: band thickness t >= 1, in output pixels.
        name: file or image id for error messages.

    Returns:
        bool out_size x out_size (or height x width), C-contiguous.

    Raises:
        InputError(ANNOTATION_INVALID): a malformed RLE (named ``"<name> mask <k>"``).
    """
    t = _check_thickness(thickness)
    oh, ow = _size_hw(out_size)
    label = name or "<masks>"
    # Differing-neighbour maps, kept transposed (column-major like the RLEs): ev_t[j, i]
    # marks output pixels (i, j)-(i + 1, j), eh_t[j, i] marks (i, j)-(i, j + 1).
    eh_t = np.zeros((ow, oh), dtype=bool)
    ev_t = np.zeros((ow, oh), dtype=bool)
    by_size: dict[tuple[int, int], list[tuple[int, dict[str, Any]]]] = {}
    for k, item in enumerate(rles_or_masks):
        if isinstance(item, dict):
            hw = _rle_size(item, f"{label} mask {k}")
            by_size.setdefault(hw, []).append((k, item))
            continue
        mask = np.asarray(item)
        if mask.ndim != 2:
            raise ValueError(f"mask {k} must be 2-D HxW, got shape {mask.shape}")
        if mask.size == 0:
            continue
        rows, cols = nearest_indices(mask.shape[0], oh), nearest_indices(mask.shape[1], ow)
        small_t = (mask[rows[:, None], cols[None, :]] != 0).T
        eh_t[:-1] |= small_t[1:] != small_t[:-1]
        ev_t[:, :-1] |= small_t[:, 1:] != small_t[:, :-1]

    for (h, w), items in by_size.items():
        runs, lengths = rles_to_runs(
            [it for _, it in items], [f"{label} mask {k}" for k, _ in items]
        )
        if h * w == 0:
            continue
        rows, r_inv = _distinct(nearest_indices(h, oh))
        cols, c_inv = _distinct(nearest_indices(w, ow))
        offsets = np.concatenate(([0], np.cumsum(lengths)))
        for s in range(0, len(items), 64):
            e = min(s + 64, len(items))
            planes = _rle_planes_t(runs[offsets[s] : offsets[e]], lengths[s:e], h, w, rows, cols)
            if c_inv is not None:
                planes = planes[c_inv]
            if r_inv is not None:
                planes = planes[:, r_inv]
            eh_t[:-1] |= planes[1:] != planes[:-1]
            ev_t[:, :-1] |= planes[:, 1:] != planes[:, :-1]
    # Work in the transposed image and transpose once at the end: K_t is symmetric, so the
    # band of the transpose is the transpose of the band, with the pair roles swapped.
    return np.ascontiguousarray(_pairs_to_band(ev_t, eh_t, t).T)
