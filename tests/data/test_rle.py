"""RLE round trips against pycocotools, validation errors, uncompressed RLE and polygons."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pycocotools import mask as mask_utils

from directsam.data.rle import (
    mask_to_rle,
    rle_area,
    rle_bbox_xywh,
    rle_to_mask,
    rle_to_runs,
    rles_to_runs,
    segmentation_to_rle,
)
from directsam.schema import ANNOTATION_INVALID, RLE_SIZE_MISMATCH, InputError


def reference_runs(mask: np.ndarray) -> list[int]:
    """Plain-Python COCO run lengths: column-major, starting with a (possibly empty) 0-run."""
    flat = mask.T.reshape(-1).astype(int).tolist()
    runs, current, count = [], 0, 0
    for v in flat:
        if v == current:
            count += 1
        else:
            runs.append(count)
            current, count = v, 1
    runs.append(count)
    return runs


masks = st.integers(1, 24).flatmap(
    lambda h: st.integers(1, 24).flatmap(lambda w: arrays(np.bool_, (h, w)))
)


@settings(max_examples=300, deadline=None)
@given(masks)
def test_round_trip_matches_pycocotools(mask):
    rle = mask_to_rle(mask)
    ref = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    assert rle == {"size": list(mask.shape), "counts": ref["counts"].decode("ascii")}
    assert isinstance(rle["counts"], str)
    np.testing.assert_array_equal(rle_to_mask(rle), mask)
    assert rle_to_runs(rle).tolist() == reference_runs(mask)
    assert rle_area(rle) == int(mask.sum()) == int(mask_utils.area(ref))
    assert rle_bbox_xywh(rle) == [float(v) for v in mask_utils.toBbox(ref)]


@settings(max_examples=100, deadline=None)
@given(st.lists(masks, max_size=6))
def test_batch_decoding_equals_one_by_one(mask_list):
    rles = [mask_to_rle(m) for m in mask_list]
    runs, lengths = rles_to_runs(rles, [f"m{i}" for i in range(len(rles))])
    assert lengths.tolist() == [len(reference_runs(m)) for m in mask_list]
    assert runs.tolist() == [r for m in mask_list for r in reference_runs(m)]


def test_batch_errors_name_the_bad_rle():
    good = mask_to_rle(np.ones((3, 3), dtype=bool))
    for bad, why in (
        ({"size": [3, 3], "counts": "8"}, "cover 8"),
        ({"size": [3, 3], "counts": "9P"}, "truncated"),
    ):
        with pytest.raises(InputError, match=f"mask 1: .*{why}"):
            rles_to_runs([good, bad, good], ["mask 0", "mask 1", "mask 2"])
    mixed = [good, {"size": [3, 3], "counts": [0, 9]}, {"size": [0, 4], "counts": ""}]
    runs, lengths = rles_to_runs(mixed, ["a", "b", "c"])
    assert lengths.tolist() == [2, 2, 0] and runs.tolist() == [0, 9, 0, 9]


def test_large_runs_and_negative_deltas():
    # Long runs need multi-character groups and negative deltas; compare with pycocotools.
    mask = np.zeros((3000, 4000), dtype=bool)
    mask[5:2900, 7:3999] = True
    mask[1000:1001, 100:3000] = False
    rle = mask_to_rle(mask)
    runs = rle_to_runs(rle)
    assert runs.sum() == mask.size and runs[1::2].sum() == mask.sum()
    np.testing.assert_array_equal(rle_to_mask(rle), mask)
    assert rle_bbox_xywh(rle) == [7.0, 5.0, 3992.0, 2895.0]


def test_bytes_counts_and_expected_size():
    mask = np.eye(4, 6, dtype=bool)
    rle = mask_to_rle(mask)
    as_bytes = {"size": rle["size"], "counts": rle["counts"].encode()}
    np.testing.assert_array_equal(rle_to_mask(as_bytes, expected_hw=(4, 6)), mask)


def test_size_mismatch_message():
    rle = mask_to_rle(np.zeros((2, 3), dtype=bool))
    with pytest.raises(InputError) as info:
        rle_to_mask(rle, expected_hw=(3, 2), name="sa_1.json")
    assert info.value.code == RLE_SIZE_MISMATCH
    assert str(info.value) == "rle_size_mismatch: sa_1.json: RLE size [2, 3] != image size [3, 2]"


@pytest.mark.parametrize(
    "rle, why",
    [
        ("not a dict", "must be a dict"),
        ({"counts": "1"}, "missing key"),
        ({"size": [2, 2]}, "missing key"),
        ({"size": [2], "counts": "4"}, "size must be"),
        ({"size": [2, -1], "counts": ""}, "size must be"),
        ({"size": ["2", "2"], "counts": "4"}, "size must be"),
        ({"size": [2, 2], "counts": 4}, "counts must be"),
        ({"size": [2, 2], "counts": "4 "}, "alphabet"),
        ({"size": [2, 2], "counts": "4\x7f"}, "alphabet"),
        ({"size": [2, 2], "counts": "é"}, "not ASCII"),
        ({"size": [2, 2], "counts": "P"}, "truncated"),  # continuation bit on the last char
        ({"size": [2, 2], "counts": "3"}, "cover 3 pixels"),  # too few: pycocotools reads junk
        ({"size": [2, 2], "counts": "5"}, "cover 5 pixels"),  # too many: pycocotools overflows
        ({"size": [2, 2], "counts": "O"}, "negative"),  # sign bit set: -1
        ({"size": [2, 2], "counts": [1, -1, 4]}, "negative"),
        ({"size": [2, 2], "counts": [1, 1.5, 1.5]}, "list of ints"),
        ({"size": [2, 2], "counts": "oooooooo0"}, "longer than any image"),
    ],
)
def test_malformed_rle(rle, why):
    with pytest.raises(InputError) as info:
        rle_to_mask(rle, name="ann.json")
    assert info.value.code == ANNOTATION_INVALID
    assert why in str(info.value) and "ann.json" in str(info.value)


def test_uncompressed_rle():
    mask = np.zeros((5, 4), dtype=bool)
    mask[1:4, 1:3] = True
    runs = reference_runs(mask)
    unc = {"size": [5, 4], "counts": runs}
    np.testing.assert_array_equal(rle_to_mask(unc), mask)
    assert segmentation_to_rle(unc, 5, 4) == mask_to_rle(mask)
    assert rle_area(unc) == 6


def test_polygons_match_pycocotools():
    polys = [[1.0, 1.0, 8.0, 1.0, 8.0, 6.0, 1.0, 6.0], [10, 2, 14, 2, 12, 7]]
    rle = segmentation_to_rle(polys, 9, 16, "p")
    ref = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polys, 9, 16))).astype(bool)
    np.testing.assert_array_equal(rle_to_mask(rle), ref)
    assert rle["size"] == [9, 16] and isinstance(rle["counts"], str)
    assert ref[3, 4] and ref[4, 12] and not ref[8, 0]


def test_degenerate_polygons_are_skipped_not_read_as_bboxes():
    # pycocotools would read a 4-number list as a bbox and fill it; we drop it.
    rle = segmentation_to_rle([[1, 1, 5, 5]], 8, 8)
    assert rle_area(rle) == 0
    assert rle_area(segmentation_to_rle([], 8, 8)) == 0


@pytest.mark.parametrize(
    "seg, why",
    [
        ([[1, 2, 3]], "odd number"),
        ([[1, 2, "a", 4, 5, 6]], "flat list of numbers"),
        ([[0, 0, float("nan"), 1, 2, 2]], "non-finite"),
        (None, "RLE dict or a list of polygons"),
        ("counts", "RLE dict or a list of polygons"),
    ],
)
def test_bad_segmentations(seg, why):
    with pytest.raises(InputError) as info:
        segmentation_to_rle(seg, 8, 8, "img 7 ann 3")
    assert info.value.code == ANNOTATION_INVALID and why in str(info.value)


def test_segmentation_rle_size_mismatch():
    rle = mask_to_rle(np.ones((4, 4), dtype=bool))
    with pytest.raises(InputError) as info:
        segmentation_to_rle(rle, 4, 5, "x")
    assert info.value.code == RLE_SIZE_MISMATCH


def test_empty_masks():
    rle = mask_to_rle(np.zeros((0, 5), dtype=bool))
    assert rle == {"size": [0, 5], "counts": ""}
    assert rle_to_mask(rle).shape == (0, 5)
    assert rle_bbox_xywh(rle) == [0.0, 0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="2-D"):
        mask_to_rle(np.zeros((2, 2, 2), dtype=bool))
