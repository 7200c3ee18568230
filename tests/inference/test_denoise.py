"""Contour denoiser on hand-made label maps with known merges."""

from __future__ import annotations

import numpy as np
import pytest

from directsam.inference.denoise import denoise_tokens, disk_kernel, merge_targets
from directsam.inference.tokens import probs_to_tokens


def two_halves_with_island():
    """60x60: A = cols 0..29, 2 px boundary (cols 30-31), B = cols 32..59, and a 4x4 island
    token C inside B (rows 25-28, cols 45-48) ringed by a 1 px boundary."""
    labels = np.zeros((60, 60), np.int32)
    labels[:, :30] = 7
    labels[:, 32:] = 3
    labels[24:30, 44:50] = 0
    labels[25:29, 45:49] = 11
    return labels


def test_small_island_merges_into_surrounding_token():
    out = denoise_tokens(two_halves_with_island(), min_area=30)
    expected = np.zeros((60, 60), np.int32)
    # Border band is 2 x 5 = 10 px; the redrawn contour is cols 30 and 31 (both sides of the
    # change), the island and its ring become part of B.
    expected[10:50, 10:30] = 1  # A: 20 x 40 = 800 px
    expected[10:50, 32:50] = 2  # B: 18 x 40 = 720 px
    assert np.array_equal(out, expected)


def test_without_merging_the_island_stays_and_contour_is_redrawn():
    import cv2

    out = denoise_tokens(two_halves_with_island(), min_area=0, max_tokens=None)
    assert out.max() == 3
    island = out == out[26, 46]
    assert out[26, 46] == 3 and 4 <= island.sum() <= 16
    # The island is enclosed by contour: no island pixel is 8-adjacent to token B.
    grown = cv2.dilate(island.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    assert not np.any(grown & (out == 2))
    assert np.all(out[10:50, 10:30] == 1) and np.all(out[:, 30:32] == 0)


def l_layout():
    """80x80: T1 left (cols 0..39), 2 px line, T2 top right (rows 0..49), 2 px line, T3 bottom
    right (rows 52..79). T3 shares a 38 px edge with T2 and a 28 px edge with T1."""
    labels = np.zeros((80, 80), np.int32)
    labels[:, :40] = 1
    labels[:50, 42:] = 2
    labels[52:, 42:] = 3
    return labels


def test_max_tokens_merges_smallest_into_neighbour_it_overlaps_most():
    out = denoise_tokens(l_layout(), max_tokens=2)
    expected = np.zeros((80, 80), np.int32)
    expected[10:70, 10:40] = 1  # T1: 30 x 60 = 1800
    expected[10:70, 42:70] = 2  # T2 + T3: 28 x 60 = 1680
    assert np.array_equal(out, expected)


def test_merge_targets_lookup():
    labels = l_layout()
    lut = merge_targets(labels, num_keep=2, radius=5)
    assert lut.tolist() == [0, 1, 2, 2]
    # An island farther than the radius from every survivor is dropped (-> 0).
    far = np.zeros((40, 40), np.int32)
    far[:5, :5] = 1
    far[30:32, 30:32] = 2
    assert merge_targets(far, num_keep=1, radius=5).tolist() == [0, 1, 0]


def test_cap_and_min_area_together():
    rng = np.random.default_rng(0)
    probs = rng.random((120, 160)).astype(np.float32)
    labels, n = probs_to_tokens(probs, 0.3)
    assert n > 200
    out = denoise_tokens(labels, min_area=5, max_tokens=20)
    m = int(out.max())
    assert 1 <= m <= 20
    areas = np.bincount(out.ravel())[1:]
    assert np.all(areas > 0) and np.all(areas[:-1] >= areas[1:])
    # The redrawn contour separates 8-connected regions: re-tokenising gives the same count.
    relabelled, again = probs_to_tokens((out == 0).astype(np.float32), 0.5)
    assert again >= m


def test_output_tokens_are_separated_by_contour():
    rng = np.random.default_rng(1)
    labels, _ = probs_to_tokens(rng.random((90, 90)).astype(np.float32), 0.35)
    out = denoise_tokens(labels, min_area=3, max_tokens=None)
    assert out.max() > 3
    # No two different tokens touch, even diagonally.
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        a = out[max(dy, 0) :, max(dx, 0) : out.shape[1] + min(dx, 0)]
        b = out[: out.shape[0] - dy, max(-dx, 0) : out.shape[1] - max(dx, 0)]
        assert not np.any((a > 0) & (b > 0) & (a != b))


def test_edge_cases():
    assert not denoise_tokens(np.zeros((30, 30), np.int32)).any()
    single = np.ones((30, 30), np.int32)
    out = denoise_tokens(single, min_area=10_000)  # the largest token always survives
    assert out.max() == 1 and out[15, 15] == 1 and out[5, 15] == 0
    with pytest.raises(ValueError, match="max_tokens"):
        denoise_tokens(single, max_tokens=0)
    with pytest.raises(ValueError, match="min_area"):
        denoise_tokens(single, min_area=-1)


def test_disk_kernel():
    k = disk_kernel(2)
    assert k.tolist() == [
        [0, 0, 1, 0, 0],
        [0, 1, 1, 1, 0],
        [1, 1, 1, 1, 1],
        [0, 1, 1, 1, 0],
        [0, 0, 1, 0, 0],
    ]
