"""Boundary targets: hand-made expected results, and exact equality with plain references."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from directsam.data.boundary import (
    band_kernel,
    border_band,
    label_map_to_boundary,
    masks_to_boundary,
)
from directsam.data.decode import nearest_indices
from directsam.data.rle import mask_to_rle
from directsam.schema import ANNOTATION_INVALID, InputError

# --- plain references: the DESIGN.md definition, written the obvious (slow) way --------------


def reference_label_map(labels: np.ndarray, t: int) -> np.ndarray:
    """The seed's per-label loop: union of dilate - erode of every label's mask."""
    k = band_kernel(t)
    out = border_band(*labels.shape, t)
    for value in np.unique(labels):
        m = (labels == value).astype(np.uint8)
        out |= (cv2.dilate(m, k) - cv2.erode(m, k)) > 0
    return out


def reference_masks(masks: list[np.ndarray], out_hw: tuple[int, int], t: int) -> np.ndarray:
    """Each mask resized (nearest) to the output, full-image cv2 dilate - erode, union."""
    k = band_kernel(t)
    out = border_band(*out_hw, t)
    for m in masks:
        rows, cols = nearest_indices(m.shape[0], out_hw[0]), nearest_indices(m.shape[1], out_hw[1])
        small = m[rows][:, cols].astype(np.uint8)
        out |= (cv2.dilate(small, k) - cv2.erode(small, k)) > 0
    return out


def random_masks(rng: np.random.Generator, h: int, w: int, n: int) -> list[np.ndarray]:
    masks = []
    for _ in range(n):
        kind = rng.integers(0, 4)
        m = np.zeros((h, w), dtype=np.uint8)
        if kind == 0:
            m = (rng.random((h, w)) < 0.3).astype(np.uint8)
        elif kind == 1:
            y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
            m[y : y + int(rng.integers(1, h + 1)), x : x + int(rng.integers(1, w + 1))] = 1
        elif kind == 2:
            centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            axes = (int(rng.integers(1, w + 1)), int(rng.integers(1, h + 1)))
            cv2.ellipse(m, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        else:
            m[:] = 1  # full mask: only the border band
        masks.append(m.astype(bool))
    return masks


# --- kernels and border ----------------------------------------------------------------------


def test_band_kernel_shapes():
    for t in (1, 2, 3):
        np.testing.assert_array_equal(band_kernel(t), np.ones((t, t), np.uint8))
    np.testing.assert_array_equal(
        band_kernel(5),
        [[0, 0, 1, 0, 0], [0, 1, 1, 1, 0], [1, 1, 1, 1, 1], [0, 1, 1, 1, 0], [0, 0, 1, 0, 0]],
    )
    for t in range(4, 16):  # the seed's create_circular_kernel
        seed = np.zeros((t, t), np.uint8)
        cv2.circle(seed, (t // 2, t // 2), t // 2, 1, -1)
        np.testing.assert_array_equal(band_kernel(t), seed)
    with pytest.raises(ValueError):
        band_kernel(0)


def test_border_band():
    b = border_band(6, 7, 2)
    assert b[:2].all() and b[-2:].all() and b[:, :2].all() and b[:, -2:].all()
    assert not b[2:4, 2:5].any()
    assert border_band(3, 3, 5).all()


# --- hand-made label maps --------------------------------------------------------------------


def two_regions(h: int, w: int) -> np.ndarray:
    labels = np.ones((h, w), dtype=np.int32)
    labels[:, w // 2 :] = 2
    return labels


@pytest.mark.parametrize(
    "t, band_cols",
    [
        (1, []),  # a 1x1 window never holds two labels: border only
        (2, [4]),  # window cols q-1..q (anchor 1): holds cols 3 and 4 only at q = 4
        (3, [3, 4]),  # window cols q-1..q+1
    ],
)
def test_two_region_8x8(t, band_cols):
    out = label_map_to_boundary(two_regions(8, 8), t)
    expected = border_band(8, 8, t)
    expected[:, band_cols] = True
    np.testing.assert_array_equal(out, expected)


def test_two_region_16x16_disk():
    out = label_map_to_boundary(two_regions(16, 16), 5)
    expected = border_band(16, 16, 5)
    expected[:, 6:10] = True  # disk radius 2 reaches across the edge between cols 7 and 8
    np.testing.assert_array_equal(out, expected)
    # Inside the border band only cols 5 and 10 of rows 5..10 stay off.
    assert (~out).sum() == 12


def test_single_pixel_region_gives_a_disk():
    labels = np.zeros((16, 16), dtype=np.int32)
    labels[8, 8] = 7
    out = label_map_to_boundary(labels, 5)
    expected = border_band(16, 16, 5)
    expected[6:11, 6:11] |= band_kernel(5).astype(bool)
    np.testing.assert_array_equal(out, expected)


def test_label_values_do_not_matter():
    labels = two_regions(8, 8)
    relabelled = np.where(labels == 1, -(2**31), 2**31 - 1).astype(np.int64)
    np.testing.assert_array_equal(
        label_map_to_boundary(labels, 3), label_map_to_boundary(relabelled, 3)
    )


@pytest.mark.parametrize("t", [1, 2, 3, 4, 5, 6, 7, 9])
def test_label_map_equals_per_label_reference(t):
    rng = np.random.default_rng(t)
    for _ in range(10):
        h, w = (int(v) for v in rng.integers(1, 48, 2))
        coarse = rng.integers(0, 6, (int(rng.integers(1, 6)), int(rng.integers(1, 6))))
        labels = cv2.resize(coarse.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
        if rng.random() < 0.3:
            labels = rng.integers(0, 3, (h, w)).astype(np.uint8)
        np.testing.assert_array_equal(
            label_map_to_boundary(labels, t), reference_label_map(labels, t)
        )


# --- overlapping masks -----------------------------------------------------------------------


def test_overlapping_masks_keep_both_boundaries():
    outer = np.zeros((20, 20), dtype=bool)
    outer[2:18, 2:18] = True
    inner = np.zeros((20, 20), dtype=bool)
    inner[6:14, 6:14] = True
    out = masks_to_boundary([mask_to_rle(outer), mask_to_rle(inner)], 20, 2)
    assert out[6, 10] and out[10, 6]  # the inner square's edge is present
    assert out[2, 10] and out[10, 2]
    assert not out[10, 10] and not out[4, 10]


@pytest.mark.parametrize("t", [1, 2, 3, 4, 5, 7, 9])
def test_masks_equal_reference(t):
    rng = np.random.default_rng(100 + t)
    for _ in range(12):
        h, w = (int(v) for v in rng.integers(1, 60, 2))
        out_hw = (int(rng.integers(1, 70)), int(rng.integers(1, 70)))  # up- and downsampling
        masks = random_masks(rng, h, w, int(rng.integers(0, 7)))
        expected = reference_masks(masks, out_hw, t)
        rles = [mask_to_rle(m) for m in masks]
        np.testing.assert_array_equal(masks_to_boundary(rles, out_hw, t), expected)
        np.testing.assert_array_equal(masks_to_boundary(masks, out_hw, t), expected)


def test_masks_equal_reference_at_sa1b_scale():
    rng = np.random.default_rng(7)
    masks = random_masks(rng, 375, 562, 30)
    rles = [mask_to_rle(m) for m in masks]
    for out, t in ((256, 3), (200, 9)):
        np.testing.assert_array_equal(
            masks_to_boundary(rles, out, t), reference_masks(masks, (out, out), t)
        )


def test_uncompressed_rles_and_stacks():
    masks = random_masks(np.random.default_rng(3), 30, 40, 4)
    expected = reference_masks(masks, (25, 25), 3)
    unc = []
    for m in masks:
        flat = np.concatenate(([0], m.T.reshape(-1).astype(np.int8), [2]))
        change = np.flatnonzero(np.diff(flat) != 0)  # run boundaries, incl. both ends
        runs = np.diff(np.concatenate(([0], change)))
        unc.append({"size": [30, 40], "counts": runs.tolist()})
    np.testing.assert_array_equal(masks_to_boundary(unc, 25, 3), expected)
    np.testing.assert_array_equal(masks_to_boundary(np.stack(masks), 25, 3), expected)


def test_no_masks_and_empty_masks_give_the_border():
    np.testing.assert_array_equal(masks_to_boundary([], 12, 2), border_band(12, 12, 2))
    empty = mask_to_rle(np.zeros((30, 30), dtype=bool))
    np.testing.assert_array_equal(masks_to_boundary([empty], 12, 2), border_band(12, 12, 2))


def test_tiny_mask_between_samples_vanishes_like_the_reference():
    m = np.zeros((100, 100), dtype=bool)
    m[1, 1] = True  # nearest sampling to 10 px reads rows/cols 5, 15, ...: never hits it
    np.testing.assert_array_equal(
        masks_to_boundary([mask_to_rle(m)], 10, 1), border_band(10, 10, 1)
    )
    np.testing.assert_array_equal(
        masks_to_boundary([mask_to_rle(m)], 10, 1), reference_masks([m], (10, 10), 1)
    )


def test_bad_rle_names_the_image_and_mask():
    good = mask_to_rle(np.ones((4, 4), dtype=bool))
    with pytest.raises(InputError) as info:
        masks_to_boundary([good, {"size": [4, 4], "counts": "3"}], 8, 3, name="sa_9")
    assert info.value.code == ANNOTATION_INVALID and "sa_9 mask 1" in str(info.value)
    with pytest.raises(ValueError, match="thickness"):
        masks_to_boundary([good], 8, 0)
