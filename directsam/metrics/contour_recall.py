"""Effective contour recall and token count of a predicted boundary against a GT boundary.

(gt bool HxW, pred bool HxW, tolerance) -> (num_tokens, recall). Same numbers as the seed's
per-token definition (tests/metrics/oracle.py), without the per-token loop:

1. GT off and prediction on in the border band (outer `tolerance` pixels); empty GT -> skipped.
2. skeleton = skimage skeletonize(pred) (our exact re-implementation, `skeleton.py`).
3. tokens = 4-connected (`SKELETON_TOKEN_CONNECTIVITY`) components of the non-skeleton pixels
   (cv2.connectedComponents).
4. effective contour = union over tokens k of D_k minus erode(D_k), D_k = dilate(token_k),
   both with cv2's 3x3 cross ("ellipse") and cv2's default borders.
5. recall = |GT and dilate(contour, t x t ellipse)| / |GT|.

Step 4 at once. With S(x) = {L(y) > 0 : y in N(x)} (N = the cross around x, inside the image,
L = label image), x is in D_k iff k in S(x), and x is in erode(D_k) iff every in-image cross
neighbour y of x has k in S(y) (cv2's erode counts outside pixels as set). So

    x in contour  <=>  some in-image 4-neighbour q of x has S(x) not a subset of S(q),

a test on the radius-2 diamond around x (13 pixels). It can only hold where some 4-neighbour
has a positive label other than L(x); for skeleton tokens (4-connected components, so two
different tokens are never 4-adjacent) that means skeleton pixels only.

`contour_recall_maps` returns the intermediate maps of the same computation (what the
evaluation panels draw), so a panel shows exactly the numbers the metric reports.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from directsam.metrics.skeleton import _flat_nonzero, thin_inplace

SKELETON_TOKEN_CONNECTIVITY = 4
"""The metric's tokens are the 4-connected components of the non-skeleton pixels (the seed's
definition; DESIGN.md Conventions). `_skeleton_contour_at` relies on it: two different
4-connected tokens are never 4-adjacent. Inference tokens are 8-connected
(`directsam.inference.tokens.TOKEN_CONNECTIVITY`)."""

_PAD = 2  # the diamond test reads two pixels beyond the image


def effective_contour_recall(
    gt: npt.NDArray[np.bool_], pred: npt.NDArray[np.bool_], tolerance: int = 5
) -> tuple[int, float]:
    """Effective contour recall of `pred` against `gt`, and the number of tokens of `pred`.

    Args:
        gt: bool HxW ground-truth boundary (any dtype, nonzero = boundary; not modified).
        pred: bool HxW predicted boundary, same shape (not modified).
        tolerance: int >= 1, border band width and matching tolerance in pixels (t x t ellipse).

    Returns:
        (num_tokens, recall) with recall in [0, 1]; (-1, -1.0) when `gt` is empty once the
        border band is removed (the image is skipped by
        `directsam.metrics.aggregate`).
    """
    import cv2

    gt, pred, t = _checked(gt, pred, tolerance)
    h, w = gt.shape
    image_inner = (slice(t, h - t), slice(t, w - t))  # the image without its border band

    # GT outside the band, as uint8 0/1 (a view when it is bool already).
    gt_inner = gt[image_inner]
    if gt_inner.size == 0:
        return -1, -1.0
    gt_inner = (gt_inner if gt.dtype == np.bool_ else gt_inner != 0).view(np.uint8)
    n_gt = cv2.countNonZero(gt_inner)
    if n_gt == 0:
        return -1, -1.0

    frame = _skeleton_frame(pred, t)
    num_tokens, effective = _tokens_and_contour(frame)
    dilated = _cover(effective, t)
    inner = (slice(_PAD + t, _PAD + h - t), slice(_PAD + t, _PAD + w - t))
    hits = cv2.countNonZero(cv2.bitwise_and(gt_inner, dilated[inner]))
    recall = np.float64(hits) / np.float64(n_gt)  # the seed divides two numpy integer sums
    return num_tokens, float(recall)


@dataclass(frozen=True)
class ContourRecallMaps:
    """The steps of `effective_contour_recall` for one image, as bool HxW maps.

    `num_tokens` and `recall` are the metric's values; `recall` is NaN where the metric skips the
    image (GT empty once the border band is removed), and `num_tokens` is counted regardless.
    """

    skeleton: npt.NDArray[np.bool_]
    """Skeleton of the prediction with the border band set to boundary."""
    contour: npt.NDArray[np.bool_]
    """Effective contour of the skeleton's tokens."""
    covered: npt.NDArray[np.bool_]
    """The effective contour dilated by the t x t ellipse: where GT counts as recalled."""
    gt_inner: npt.NDArray[np.bool_]
    """GT with the border band zeroed: the pixels recall is measured on."""
    num_tokens: int
    recall: float


def contour_recall_maps(
    gt: npt.NDArray[np.bool_], pred: npt.NDArray[np.bool_], tolerance: int = 5
) -> ContourRecallMaps:
    """The intermediate maps of `effective_contour_recall(gt, pred, tolerance)`, same numbers.

    Args: as `effective_contour_recall`.

    Returns:
        `ContourRecallMaps` (bool HxW maps, `num_tokens`, `recall`).
    """
    gt, pred, t = _checked(gt, pred, tolerance)
    h, w = gt.shape
    gt_inner = np.zeros((h, w), dtype=bool)
    gt_inner[t : h - t, t : w - t] = gt[t : h - t, t : w - t] != 0
    frame = _skeleton_frame(pred, t)
    num_tokens, effective = _tokens_and_contour(frame)
    covered = _cover(effective, t)
    image = (slice(_PAD, _PAD + h), slice(_PAD, _PAD + w))
    covered_image = covered[image].astype(bool)
    n_gt = np.count_nonzero(gt_inner)
    hits = np.count_nonzero(gt_inner & covered_image)
    return ContourRecallMaps(
        skeleton=frame[image].astype(bool),
        contour=effective[image].astype(bool),
        covered=covered_image,
        gt_inner=gt_inner,
        num_tokens=num_tokens,
        recall=float(np.float64(hits) / np.float64(n_gt)) if n_gt else float("nan"),
    )


def _checked(
    gt: npt.ArrayLike, pred: npt.ArrayLike, tolerance: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """(gt, pred as arrays, tolerance as int), or ValueError naming what is wrong."""
    gt = np.asarray(gt)
    pred = np.asarray(pred)
    if gt.ndim != 2 or gt.shape != pred.shape:
        raise ValueError(
            f"gt and pred must be 2-D of the same shape, got {gt.shape} and {pred.shape}"
        )
    if isinstance(tolerance, bool) or int(tolerance) != tolerance or tolerance < 1:
        raise ValueError(f"tolerance must be an integer >= 1, got {tolerance!r}")
    return gt, pred, int(tolerance)


def _skeleton_frame(pred: np.ndarray, t: int) -> npt.NDArray[np.uint8]:
    """Step 1-2: uint8 0/1 skeleton of `pred` with its border band (width t) on, in a frame with
    a zero ring of width `_PAD` ((H + 2 _PAD) x (W + 2 _PAD))."""
    h, w = pred.shape
    image_inner = (slice(t, h - t), slice(t, w - t))
    frame = np.zeros((h + 2 * _PAD, w + 2 * _PAD), dtype=np.uint8)
    inner = (slice(_PAD + t, _PAD + h - t), slice(_PAD + t, _PAD + w - t))
    frame[_PAD : _PAD + t, _PAD:-_PAD] = 1
    frame[-_PAD - t : -_PAD, _PAD:-_PAD] = 1
    frame[_PAD + t : -_PAD - t, _PAD : _PAD + t] = 1
    frame[_PAD + t : -_PAD - t, -_PAD - t : -_PAD] = 1
    if pred.dtype == np.bool_:  # a plain copy: 6x faster than comparing
        np.copyto(frame[inner], pred[image_inner].view(np.uint8))
    else:
        np.not_equal(pred[image_inner], 0, out=frame.view(bool)[inner])
    thin_inplace(frame)
    return frame


def _tokens_and_contour(frame: npt.NDArray[np.uint8]) -> tuple[int, npt.NDArray[np.uint8]]:
    """Step 3-4 on a `_skeleton_frame`: (number of tokens, uint8 0/1 effective contour, same
    padded frame)."""
    # Tokens: the ring is passed as background so that labels live in the same padded frame;
    # it adds no component and splits none, so the count equals the unpadded call's.
    tokens_in = np.subtract(np.uint8(1), frame)
    _clear_ring(tokens_in, 0)
    num_labels, labels = _token_labels(tokens_in)
    _clear_ring(labels, -1)  # -1 = outside the image

    effective = np.zeros_like(frame)
    skeleton_idx = _flat_nonzero(frame)
    effective.ravel()[skeleton_idx[_skeleton_contour_at(labels, skeleton_idx)]] = 1
    return num_labels - 1, effective


def _cover(effective: npt.NDArray[np.uint8], t: int) -> npt.NDArray[np.uint8]:
    """Step 5's dilation: the padded effective contour dilated by the t x t ellipse."""
    import cv2

    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (t, t))
    # Dilating the padded frame equals dilating the image: the ring is 0 and cv2 pads with -inf.
    return cv2.dilate(effective, kernel, iterations=1)


def _token_labels(tokens_in: npt.NDArray[np.uint8]) -> tuple[int, npt.NDArray[np.signedinteger]]:
    """cv2 labels (`SKELETON_TOKEN_CONNECTIVITY`) of the nonzero pixels: (number of labels
    incl. 0, labels).

    16-bit labels (a fifth faster), read as int16, when there are at most 32767 of them; else
    (cv2 refuses to overflow 16 bits) 32-bit ones. Same labelling either way.
    """
    import cv2

    try:
        num_labels, labels = cv2.connectedComponents(
            tokens_in, connectivity=SKELETON_TOKEN_CONNECTIVITY, ltype=cv2.CV_16U
        )
    except cv2.error:
        num_labels = None
    if num_labels is not None and num_labels <= np.iinfo(np.int16).max:
        return num_labels, labels.view(np.int16)
    return cv2.connectedComponents(
        tokens_in, connectivity=SKELETON_TOKEN_CONNECTIVITY, ltype=cv2.CV_32S
    )


def effective_contour(labels: npt.NDArray[np.integer]) -> npt.NDArray[np.bool_]:
    """Union over labels k > 0 of cv2 dilate(L == k) minus erode(dilate(L == k)), 3x3 cross.

    Works for any label image (labels need not be connected or separated by 0).

    Args:
        labels: int HxW label image, 0 = no token, values < 2**31.

    Returns:
        bool HxW effective contour.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be 2-D, got shape {labels.shape}")
    h, w = labels.shape
    padded = np.full((h + 2 * _PAD, w + 2 * _PAD), -1, dtype=np.int32)
    inner = padded[_PAD:-_PAD, _PAD:-_PAD]
    inner[...] = np.maximum(labels, 0)
    # Candidates: some in-image 4-neighbour carries a positive label other than the pixel's own.
    cand = np.zeros((h, w), dtype=bool)
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        nb = padded[_PAD + dy : _PAD + dy + h, _PAD + dx : _PAD + dx + w]
        cand |= (nb > 0) & (nb != inner)
    ys, xs = np.nonzero(cand)
    idx = (ys.astype(np.intp) + _PAD) * padded.shape[1] + (xs.astype(np.intp) + _PAD)
    out = np.zeros(padded.shape, dtype=bool)
    out.ravel()[idx[_contour_at(padded, idx)]] = True
    return out[_PAD:-_PAD, _PAD:-_PAD].copy()


def _clear_ring(a: np.ndarray, value: int) -> None:
    """Set the outer `_PAD` rows and columns of a 2-D array to `value`, in place."""
    a[:_PAD] = value
    a[-_PAD:] = value
    a[:, :_PAD] = value
    a[:, -_PAD:] = value


def _skeleton_contour_at(
    labels: npt.NDArray[np.signedinteger], idx: npt.NDArray[np.intp]
) -> npt.NDArray[np.bool_]:
    """`_contour_at` for skeleton pixels of a token label image (tokens = the 4-connected
    components of the non-zero pixels, so two different tokens are never 4-adjacent).

    For p with L(p) = 0: (i) two different labels k1 != k2 among p's 4-neighbours -> contour
    (q = the k1 neighbour has only k1 / 0 around it, so k2 is not in S(q)); (ii) one label k ->
    contour iff some in-image skeleton neighbour q (L(q) = 0; a k-labelled q has k in S(q))
    has no k around it; (iii) no label -> S(p) is empty, not contour.
    """
    flat = labels.ravel()
    stride = labels.shape[1]
    cross = (-stride, stride, -1, 1)
    near = [flat[idx + b] for b in cross]  # L(q) for p's 4 neighbours q (-1 outside the image)
    k = np.maximum(np.maximum(near[0], near[1]), np.maximum(near[2], near[3]))
    two_labels = np.zeros(idx.size, dtype=bool)
    for q in near:
        two_labels |= (q > 0) & (q != k)
    hit = two_labels
    # Case (ii) only for the pixels that need it (gathers are the cost): p's with one label.
    sel = np.flatnonzero((k > 0) & ~two_labels)
    p_sel, k_sel = idx[sel], k[sel]
    found = np.zeros(sel.size, dtype=bool)
    for b, q in zip(cross, near, strict=True):
        sub = np.flatnonzero(q[sel] == 0)  # q = p + b is an in-image skeleton pixel
        p_sub, k_sub = p_sel[sub], k_sel[sub]
        lacks_k = np.ones(sub.size, dtype=bool)
        for c in cross:
            if b + c != 0:  # q's neighbours other than p
                lacks_k &= flat[p_sub + (b + c)] != k_sub
        found[sub[lacks_k]] = True
    hit[sel] = found
    return hit


def _contour_at(labels: npt.NDArray[np.int32], idx: npt.NDArray[np.intp]) -> npt.NDArray[np.bool_]:
    """For flat indices `idx` into a padded label frame (-1 outside the image, ring >= 2), whether
    each pixel is on the effective contour (module docstring): some in-image 4-neighbour q has
    a label of S(p) missing from S(q)."""
    flat = labels.ravel()
    stride = labels.shape[1]
    cross = (-stride, stride, -1, 1)
    # Labels on the radius-2 diamond around p (p, its 4 neighbours, theirs), one gather each.
    offsets = {0, *cross, *(a + b for a in cross for b in cross)}
    at = {o: flat[idx + o] for o in offsets}
    hit = np.zeros(idx.size, dtype=bool)
    for a in cross:  # k = label of p's neighbour p + a (a label of S(p); L(p) is in every S(q))
        k = at[a]
        k_pos = k > 0
        if not k_pos.any():
            continue
        for b in cross:  # q = p + b, another 4-neighbour of p (k is in S(p + a) trivially)
            if b == a:
                continue
            q = at[b]
            missing = k_pos & (q >= 0) & (q != k)
            for c in cross:  # the rest of S(q): q's 4-neighbours (one of them is p)
                missing &= at[b + c] != k
            hit |= missing
    return hit
