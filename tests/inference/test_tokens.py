"""probs_to_tokens equals scipy's 8-connected labelling, ordered by area; masks and stats."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from directsam.inference.tokens import (
    TOKEN_CONNECTIVITY,
    labels_to_masks,
    neighbour_offsets,
    neighbourhood,
    probs_to_tokens,
    relabel_by_area,
    token_stats,
)


def smooth_noise(shape, seed, sigma=2.0):
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.random(shape), sigma)
    return ((field - field.min()) / (field.max() - field.min())).astype(np.float32)


@pytest.mark.parametrize("seed, threshold", [(0, 0.5), (1, 0.3), (2, 0.4)])
def test_tokens_equal_reference_components(seed, threshold):
    probs = smooth_noise((97, 131), seed)
    labels, n = probs_to_tokens(probs, threshold)
    ref, ref_n = ndimage.label(probs < threshold, structure=np.ones((3, 3), dtype=int))
    assert labels.dtype == np.int32 and labels.shape == probs.shape
    assert n == ref_n > 3
    assert np.array_equal(labels == 0, probs >= threshold)
    # Same partition: each token is exactly one reference component.
    pairs = {(a, b) for a, b in zip(labels.ravel(), ref.ravel())}
    assert len(pairs) == n + 1
    areas = np.bincount(labels.ravel())[1:]
    assert areas.size == n and np.all(areas[:-1] >= areas[1:])


def test_eight_connectivity_joins_diagonals():
    probs = np.ones((4, 4), np.float32)
    probs[0, 0] = probs[1, 1] = probs[2, 2] = 0.0  # diagonal chain: one 8-connected token
    probs[0, 3] = 0.0
    labels, n = probs_to_tokens(probs, 0.5)
    assert n == 2
    assert labels[0, 0] == labels[1, 1] == labels[2, 2] == 1 and labels[0, 3] == 2


def test_ties_keep_raster_order_of_first_pixel():
    probs = np.ones((5, 7), np.float32)
    probs[0, 4:6] = 0  # token first seen at (0, 4), area 2
    probs[2, 0:2] = 0  # first seen at (2, 0), area 2
    probs[4, 0:3] = 0  # area 3: largest
    labels, n = probs_to_tokens(probs, 0.5)
    assert n == 3
    assert labels[4, 0] == 1 and labels[0, 4] == 2 and labels[2, 0] == 3


def test_no_tokens():
    labels, n = probs_to_tokens(np.ones((3, 3), np.float32), 0.5)
    assert n == 0 and not labels.any()
    assert labels_to_masks(labels).shape == (0, 3, 3)


def test_labels_to_masks_round_trip():
    labels, n = probs_to_tokens(smooth_noise((40, 50), 3), 0.5)
    masks = labels_to_masks(labels)
    assert masks.shape == (n, 40, 50) and masks.dtype == bool
    rebuilt = np.zeros_like(labels)
    for i, mask in enumerate(masks):
        rebuilt[mask] = i + 1
    assert np.array_equal(rebuilt, labels)
    assert masks.sum(axis=0).max() <= 1


def test_token_stats_hand_made():
    labels = np.array(
        [
            [1, 1, 0, 2],
            [1, 1, 0, 2],
            [0, 0, 0, 0],
            [3, 0, 0, 0],
        ],
        dtype=np.int32,
    )
    probs = np.where(labels > 0, 0.1, 0.9).astype(np.float32)
    probs[0, 0] = 0.3
    stats = token_stats(labels, probs)
    assert stats["area"].tolist() == [4, 2, 1]
    assert stats["bbox_xywh"].tolist() == [[0, 0, 2, 2], [3, 0, 1, 2], [0, 3, 1, 1]]
    np.testing.assert_allclose(stats["mean_prob"], [0.15, 0.1, 0.1], rtol=1e-6)


def test_relabel_by_area_drops_gaps_and_sorts():
    labels = np.array([[5, 5, 0], [9, 0, 2], [9, 9, 0]])
    out, n = relabel_by_area(labels)
    assert n == 3
    assert out.tolist() == [[2, 2, 0], [1, 0, 3], [1, 1, 0]]


def test_neighbourhoods_are_scipys_structures():
    assert TOKEN_CONNECTIVITY == 8  # DESIGN.md Conventions: inference tokens are 8-connected
    np.testing.assert_array_equal(neighbourhood(4), ndimage.generate_binary_structure(2, 1))
    np.testing.assert_array_equal(neighbourhood(8), ndimage.generate_binary_structure(2, 2))
    assert neighbour_offsets(4) == [(-1, 0), (0, -1), (0, 1), (1, 0)]
    assert len(neighbour_offsets(8)) == 8 and (0, 0) not in neighbour_offsets(8)
    with pytest.raises(ValueError, match="connectivity"):
        neighbourhood(6)


def test_one_token_module_owns_the_label_map_helpers():
    import directsam.delivery
    import directsam.delivery.tokens
    import directsam.inference.tokens as owner

    for name in ("labels_to_records", "labels_to_rles"):
        assert getattr(directsam.delivery, name) is getattr(owner, name)
        assert getattr(directsam.delivery.tokens, name) is getattr(owner, name)
    assert directsam.delivery.tokens.probs_to_token_output is owner.probs_to_token_output
    for name in ("contour_confidence", "inner_points_xy", "relabel_by_area", "token_stats"):
        assert not hasattr(directsam.delivery.tokens, name)
