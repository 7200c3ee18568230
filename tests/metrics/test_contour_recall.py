"""effective_contour_recall against the literal per-token oracle: same token count, same float."""

from __future__ import annotations

import math

import numpy as np
import pytest

from directsam.metrics import (
    aggregate,
    contour_recall_maps,
    effective_contour,
    effective_contour_recall,
)

from .oracle import oracle_contour_maps, oracle_contour_recall, oracle_effective_contour
from .scenes import labels_to_boundary, random_blob_scene, voronoi_labels, voronoi_scene


def _random_scene(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    h, w = (int(v) for v in rng.integers(8, 72, size=2))
    kind = int(rng.integers(0, 4))
    if kind == 0:  # noise: many single-pixel tokens and isolated skeleton pixels
        gt = rng.random((h, w)) < rng.uniform(0.0, 0.4)
        return gt, rng.random((h, w)) < rng.uniform(0.0, 1.0)
    if kind == 1:  # thick and thin blobs
        return random_blob_scene(h, w, rng, float(rng.uniform(0.02, 0.7)))
    if kind == 2:  # two partitions with boundaries of random thickness
        return (
            labels_to_boundary(voronoi_labels(h, w, int(rng.integers(1, 10)), rng), 1),
            labels_to_boundary(
                voronoi_labels(h, w, int(rng.integers(1, 25)), rng), int(rng.integers(1, 4))
            ),
        )
    # thin lines only, some touching the image border
    gt = np.zeros((h, w), dtype=bool)
    pred = np.zeros((h, w), dtype=bool)
    for target in (gt, pred, pred):
        if rng.random() < 0.5:
            target[int(rng.integers(0, h)), :] = True
        else:
            target[:, int(rng.integers(0, w))] = True
    return gt, pred


@pytest.mark.parametrize("tolerance", [1, 2, 3, 4, 5, 7])
def test_equals_oracle_on_random_scenes(tolerance: int) -> None:
    rng = np.random.default_rng(tolerance)
    checked = 0
    for _ in range(120):
        gt, pred = _random_scene(rng)
        ours = effective_contour_recall(gt, pred, tolerance)
        expected = oracle_contour_recall(gt, pred, tolerance)
        assert ours == expected  # exact: same token count and bit-identical float
        assert type(ours[0]) is int and type(ours[1]) is float
        checked += expected[0] >= 0
    assert checked > 60  # most scenes are scored, not skipped


@pytest.mark.parametrize("tolerance", [1, 3, 5])
def test_maps_are_the_definitions_steps_and_give_the_metrics_numbers(tolerance: int) -> None:
    # What the evaluation panels draw: each map equals the literal definition's, and the maps'
    # token count and recall are the metric's (NaN recall where the metric skips the image).
    rng = np.random.default_rng(100 + tolerance)
    skipped = 0
    for _ in range(60):
        gt, pred = _random_scene(rng)
        maps = contour_recall_maps(gt, pred, tolerance)
        expected = oracle_contour_maps(gt, pred, tolerance)
        for key in ("gt_inner", "skeleton", "contour", "covered"):
            got = getattr(maps, key)
            assert got.dtype == np.bool_ and got.shape == gt.shape, key
            np.testing.assert_array_equal(got, expected[key], err_msg=key)
        assert maps.num_tokens == expected["num_tokens"]
        num_tokens, recall = effective_contour_recall(gt, pred, tolerance)
        if recall < 0:
            skipped += 1
            assert math.isnan(maps.recall)
        else:
            assert (maps.num_tokens, maps.recall) == (num_tokens, recall)  # exact
    assert skipped > 0


def test_equals_oracle_on_a_large_scene() -> None:
    rng = np.random.default_rng(3)
    gt, pred = voronoi_scene(301, 257, rng, pred_seeds=90, gt_seeds=25, noise=0.002)
    result = effective_contour_recall(gt, pred, 5)
    assert result == oracle_contour_recall(gt, pred, 5)
    assert result[0] >= 90 and 0.0 < result[1] < 1.0


@pytest.mark.parametrize("tolerance", [1, 3, 5])
def test_empty_and_full_predictions(tolerance: int) -> None:
    rng = np.random.default_rng(11)
    gt = labels_to_boundary(voronoi_labels(40, 33, 6, rng), 1)
    for pred in (np.zeros_like(gt), np.ones_like(gt)):
        assert effective_contour_recall(gt, pred, tolerance) == oracle_contour_recall(
            gt, pred, tolerance
        )
    # Empty prediction: only the border band's skeleton is left. For t >= 3 it runs inside the
    # band, so the band's outer strip is a token besides the interior (the seed counts it too);
    # a 1 px band keeps its ring but thinning cuts its four corner pixels off as tokens.
    num_tokens, _ = effective_contour_recall(gt, np.zeros_like(gt), tolerance)
    assert num_tokens == {1: 5, 3: 2, 5: 2}[tolerance]


def test_known_values() -> None:
    # 21x21, tolerance 3: a vertical line in column 10 splits the interior into two tokens; the
    # band's outer strip is the third (see above).
    gt = np.zeros((21, 21), dtype=bool)
    gt[1:20, 10] = True
    assert effective_contour_recall(gt, gt, 3) == (3, 1.0)
    # A prediction 6 px away from the GT line recalls none of it (3x3 cross = 1 px slack).
    pred = np.zeros_like(gt)
    pred[:, 4] = True
    assert effective_contour_recall(gt, pred, 3) == (3, 0.0)
    # Rows 11.. of the GT line moved 6 px away: GT rows 3..10 (8 of 15 px) stay recalled.
    gt2 = gt.copy()
    gt2[11:20, 10] = False
    gt2[11:20, 16] = True
    assert effective_contour_recall(gt2, gt, 3) == (3, 8 / 15)


def test_skipped_when_gt_only_in_border_band() -> None:
    gt = np.zeros((30, 30), dtype=bool)
    gt[:5] = True
    gt[:, -5:] = True
    pred = np.ones_like(gt)
    assert effective_contour_recall(gt, pred, 5) == (-1, -1.0)
    assert oracle_contour_recall(gt, pred, 5) == (-1, -1.0)
    assert effective_contour_recall(np.ones((8, 8), bool), pred[:8, :8], 4) == (-1, -1.0)


def test_inputs_not_modified_and_dtypes_accepted() -> None:
    rng = np.random.default_rng(5)
    gt, pred = random_blob_scene(40, 50, rng, 0.3)
    gt_u8, pred_u8 = gt.astype(np.uint8) * 255, pred.astype(np.uint8)
    before = (gt_u8.copy(), pred_u8.copy())
    assert effective_contour_recall(gt_u8, pred_u8, 3) == effective_contour_recall(gt, pred, 3)
    np.testing.assert_array_equal(gt_u8, before[0])
    np.testing.assert_array_equal(pred_u8, before[1])


def test_rejects_bad_arguments() -> None:
    gt = np.zeros((10, 10), dtype=bool)
    with pytest.raises(ValueError, match="same shape"):
        effective_contour_recall(gt, np.zeros((10, 11), dtype=bool))
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="tolerance"):
            effective_contour_recall(gt, gt, bad)


def _random_label_map(rng: np.random.Generator) -> np.ndarray:
    h, w = (int(v) for v in rng.integers(1, 40, size=2))
    kind = int(rng.integers(0, 3))
    if kind == 0:  # arbitrary labels: different tokens touch, zeros scattered
        return rng.integers(0, int(rng.integers(1, 6)) + 1, size=(h, w))
    if kind == 1:  # partition with some cells removed (0) and relabelled to large ids
        labels = voronoi_labels(h, w, int(rng.integers(1, 12)), rng) + 1
        labels[rng.random(labels.shape) < 0.1] = 0
        return labels * 1000
    labels = np.zeros((h, w), dtype=np.int64)  # sparse single pixels and small squares
    for k in range(1, int(rng.integers(1, 8))):
        y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
        labels[y : y + int(rng.integers(1, 3)), x : x + int(rng.integers(1, 3))] = k
    return labels


def test_effective_contour_equals_per_label_union() -> None:
    rng = np.random.default_rng(21)
    for _ in range(400):
        labels = _random_label_map(rng)
        np.testing.assert_array_equal(effective_contour(labels), oracle_effective_contour(labels))


def test_aggregate() -> None:
    out = aggregate([(10, 0.5), (-1, -1.0), (20, 1.0), (-1, -1)])
    assert out == {"mean_recall": 0.75, "mean_num_tokens": 15.0, "num_images": 2, "num_skipped": 2}
    empty = aggregate([(-1, -1.0)])
    assert math.isnan(empty["mean_recall"]) and math.isnan(empty["mean_num_tokens"])
    assert (empty["num_images"], empty["num_skipped"]) == (0, 1)
    assert aggregate(iter([(3, 0.25)]))["mean_recall"] == 0.25


def test_token_labels_16_and_32_bit() -> None:
    # Up to 32767 labels: 16-bit labels read as int16; beyond: 32-bit. Same labelling as cv2's
    # 32-bit call either way.
    import cv2

    from directsam.metrics.contour_recall import _token_labels

    for step, expected_dtype in ((3, np.int16), (2, np.int32)):
        tokens_in = np.zeros((404, 404), dtype=np.uint8)
        tokens_in[2:-2:step, 2:-2:step] = 1  # isolated pixels: 18225 or 40000 components
        tokens_in[100:200, 100:300] = 1  # and one large one
        num_labels, labels = _token_labels(tokens_in)
        expected_num, expected = cv2.connectedComponents(tokens_in, connectivity=4)
        assert num_labels == expected_num and (num_labels > 32767) == (step == 2)
        assert labels.dtype == expected_dtype
        np.testing.assert_array_equal(labels, expected)
