"""Device-side threshold + bit packing, and COCO RLE from packed bits (equal to the mask path)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from directsam.data.rle import mask_to_rle, rle_to_mask
from directsam.inference.postprocess import (
    boundary_rle_counts,
    pack_bits,
    pack_boundary,
    packed_size,
    unpack_boundary,
)


@pytest.mark.parametrize("side", [8, 13, 64])
def test_pack_bits_is_numpy_packbits(side):
    rng = np.random.default_rng(side)
    mask = rng.random((3, side, side)) < 0.3
    packed = pack_bits(torch.from_numpy(mask)).numpy()
    np.testing.assert_array_equal(packed, np.packbits(mask.reshape(3, -1), axis=1))


def _maps(h: int, w: int) -> list[np.ndarray]:
    """Probability maps whose thresholded masks cover the RLE edge cases."""
    rng = np.random.default_rng(h * 1000 + w)
    yy, xx = np.mgrid[0:h, 0:w]
    lines = ((yy % 7 == 0) | (np.abs(xx - yy) < 2)).astype(np.float32)  # thin, boundary-like
    return [
        rng.random((h, w), dtype=np.float32),  # noise: many short runs
        lines * 0.9,
        np.zeros((h, w), np.float32),  # no boundary: one run
        np.ones((h, w), np.float32),  # all boundary: a leading empty run
        np.where(xx == w - 1, 0.5, 0.0).astype(np.float32),  # exactly at the threshold
    ]


@pytest.mark.parametrize(("h", "w"), [(64, 64), (13, 21), (21, 13), (1, 9), (96, 40)])
def test_packed_counts_equal_the_mask_path_byte_for_byte(h, w):
    maps = _maps(h, w)
    probs = torch.from_numpy(np.stack(maps))
    packed = pack_boundary(probs, 0.5).numpy()
    assert packed.shape == (len(maps), packed_size(h, w)) and packed.dtype == np.uint8
    for k, p in enumerate(maps):
        mask = p >= 0.5
        unpacked = unpack_boundary(packed[k], h, w)
        np.testing.assert_array_equal(unpacked, mask)
        counts = boundary_rle_counts(packed[k], h, w)
        assert counts == mask_to_rle(mask)["counts"]  # today's encoder, identical string
        np.testing.assert_array_equal(rle_to_mask({"size": [h, w], "counts": counts}), mask)


def test_realistic_boundary_at_labeling_size(tmp_path):
    """A human boundary of a generated SA-1B image at 256 px, as a stand-in prediction."""
    from directsam.data.sample import make_sample
    from directsam.data.targets import annotation_to_boundary

    root = make_sample(tmp_path, num_images=1, seed=5, kind="sa1b", height=120, width=180)
    ann = next(root.glob("sa_*/sa_1.json")).read_bytes()
    boundary = annotation_to_boundary(ann, "sa1b", (120, 180), 256, 3, "sa_1")
    probs = torch.from_numpy(boundary.astype(np.float32) * 0.8)[None]
    packed = pack_boundary(probs, 0.5).numpy()[0]
    assert boundary.any() and not boundary.all()
    assert boundary_rle_counts(packed, 256, 256) == mask_to_rle(boundary)["counts"]


def test_empty_map_encodes_as_empty_counts():
    assert (
        boundary_rle_counts(np.zeros(0, np.uint8), 0, 5) == mask_to_rle(np.zeros((0, 5)))["counts"]
    )
