"""Pyramid inference: crop geometry and exact averaging with a fake predict_fn."""

from __future__ import annotations

import math

import numpy as np
import pytest

from directsam.inference.pyramid import crop_boxes_xyxy, fade_crop_border, pyramid_predict


def constant_predict(resolution, value=1.0):
    calls = []

    def predict_fn(images):
        calls.append([im.shape[:2] for im in images])
        return np.full((len(images), resolution, resolution), value, dtype=np.float32)

    return predict_fn, calls


def test_crop_boxes_layer1():
    # side 300 -> crop ceil((90 + 300) / 2) = 195, offsets 0 and 105; side 400 -> 245, 0/155
    assert crop_boxes_xyxy(300, 400, 1) == [
        (0, 0, 245, 195),
        (155, 0, 400, 195),
        (0, 105, 245, 300),
        (155, 105, 400, 300),
    ]


@pytest.mark.parametrize("height, width", [(1500, 2250), (481, 640), (1024, 1024)])
def test_crop_boxes_layer2_tile_with_90px_overlap(height, width):
    boxes = crop_boxes_xyxy(height, width, 2)
    assert len(boxes) == 16
    n = 4
    crop_h, crop_w = (math.ceil((90 * (n - 1) + s) / n) for s in (height, width))
    covered = np.zeros((height, width), np.int32)
    for x0, y0, x1, y1 in boxes:
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        assert (y1 - y0, x1 - x0) in {
            (crop_h, crop_w),
            (height - y0, crop_w),
            (crop_h, width - x0),
            (height - y0, width - x0),
        }
        covered[y0:y1, x0:x1] += 1
    assert covered.min() >= 1
    xs = sorted({b[0] for b in boxes})
    assert all(b - a == crop_w - 90 for a, b in zip(xs, xs[1:]))


def test_small_image_is_refused():
    with pytest.raises(ValueError, match="90 px"):
        crop_boxes_xyxy(80, 400, 1)


def test_fade_crop_border_bands():
    probs = fade_crop_border(np.ones((200, 240), np.float32))
    assert probs[0, 120] == 0 and probs[29, 120] == 0  # outer 30 px zeroed
    assert probs[30, 120] == 0.5 and probs[59, 120] == 0.5  # next 30 px halved
    assert probs[60, 120] == 1.0 and probs[139, 120] == 1.0  # interior untouched
    assert probs[140, 120] == 0.5 and probs[170, 120] == 0  # bottom edge bands
    assert probs[100, 239] == 0 and probs[100, 200] == 0.5  # right edge bands
    assert probs[40, 40] == 0.25  # halved twice in the corner band (as the reference does)


def test_pyramid_constant_map_exact_values():
    image = np.zeros((300, 400, 3), np.uint8)
    predict_fn, calls = constant_predict(64)
    out = pyramid_predict(predict_fn, image, resolution=64, layers=1)
    assert out.shape == (300, 400) and out.dtype == np.float32
    assert len(calls) == 1 and calls[0][0] == (300, 400) and len(calls[0]) == 5
    # Crops: x in [0,245) and [155,400); y in [0,195) and [105,300).
    assert out[70, 70] == 1.0  # one crop, interior: (1 + 1) / 2
    assert out[40, 70] == 0.75  # one crop, halved band at its top edge
    assert out[10, 70] == 0.5  # one crop, zeroed band
    # Overlap of all four crops at (y=150, x=200): every crop sees it in a halved band of
    # both axes (0.25 each): (1 + 4 * 0.25) / 2.
    assert out[150, 200] == 1.0
    # (y=150, x=100): crops (0,0) and (0,105); local rows 150 / 45 -> halved in both, cols 100
    # interior -> (1 + 0.5 + 0.5) / 2.
    assert out[150, 100] == 1.0
    # (y=120, x=100): crop (0,0) row 120 interior (1); crop y0=105 local row 15 zeroed.
    assert out[120, 100] == 1.0
    # (y=170, x=20): column 20 lies in the zeroed band of both crops A and C.
    assert out[170, 20] == 0.5
    # (y=140, x=40): A local (140, 40) and C local (35, 40) are both in halved bands of both
    # axes: (1 + 0.25 + 0.25) / 2.
    assert out[140, 40] == 0.75
    assert out[299, 399] == 0.5  # image corner: only crop D, zeroed band


def test_native_size_maps_give_the_same_result():
    image = np.zeros((300, 400, 3), np.uint8)
    predict_fn, _ = constant_predict(64)
    square = pyramid_predict(predict_fn, image, resolution=64, layers=2)
    native = pyramid_predict(
        lambda ims: [np.ones(im.shape[:2], np.float32) for im in ims], image, 64, layers=2
    )
    assert np.array_equal(square, native)
    assert native[0, 0] == 1 / 3  # global only: every crop zeroes the image corner


def test_pyramid_layers_zero_is_global_map():
    image = np.zeros((120, 100, 3), np.uint8)
    yy, xx = np.mgrid[0:32, 0:32]
    gradient = (xx / 31.0).astype(np.float32)

    def predict_fn(images):
        return np.stack([gradient] * len(images))

    out = pyramid_predict(predict_fn, image, resolution=32, layers=0)
    assert out.shape == (120, 100)
    assert out[:, 0].max() < 0.02 and out[:, -1].min() > 0.98


def test_predict_fn_shape_is_checked():
    with pytest.raises(ValueError, match="predict_fn returned"):
        pyramid_predict(lambda ims: np.zeros((1, 8, 8)), np.zeros((200, 200, 3), np.uint8), 8)
    with pytest.raises(ValueError, match="expected the image size"):
        pyramid_predict(
            lambda ims: np.zeros((len(ims), 9, 9)), np.zeros((200, 200, 3), np.uint8), 8
        )
