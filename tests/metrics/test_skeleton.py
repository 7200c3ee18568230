"""Our sparse Zhang-Suen thinning against skimage.morphology.skeletonize, pixel for pixel."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.morphology import skeletonize as skimage_skeletonize

import directsam.metrics.skeleton as skeleton_mod
from directsam.metrics import skeletonize

from .scenes import labels_to_boundary, random_blob_scene, voronoi_labels


def _random_images(seed: int, count: int):
    rng = np.random.default_rng(seed)
    for i in range(count):
        h, w = (int(v) for v in rng.integers(1, 48, size=2))
        kind = i % 4
        if kind == 0:  # salt noise of any density: isolated pixels up to nearly full
            yield rng.random((h, w)) < rng.random()
        elif kind == 1:  # smooth blobs: thick and thin parts
            yield random_blob_scene(h, w, rng, float(rng.uniform(0.05, 0.7)))[1]
        elif kind == 2:  # partition boundaries of random thickness
            n = int(rng.integers(1, 12))
            yield labels_to_boundary(voronoi_labels(h, w, n, rng), int(rng.integers(1, 5)))
        else:  # rectangles, lines and their unions
            img = np.zeros((h, w), dtype=bool)
            for _ in range(int(rng.integers(1, 6))):
                y0, x0 = int(rng.integers(0, h)), int(rng.integers(0, w))
                img[y0 : y0 + int(rng.integers(1, h + 1)), x0 : x0 + int(rng.integers(1, 4))] = 1
                img[y0 : y0 + int(rng.integers(1, 4)), x0 : x0 + int(rng.integers(1, w + 1))] = 1
            yield img


@pytest.mark.parametrize("seed", range(4))
def test_equals_skimage_on_random_images(seed: int) -> None:
    for image in _random_images(seed, 150):
        np.testing.assert_array_equal(skeletonize(image), skimage_skeletonize(image))


@pytest.mark.parametrize(
    ("dense_fraction", "python_below"),
    [(0.0, 0), (0.0, 10**9), (1e-3, 0), (1e-3, 10**9), (10.0, 0), (10.0, 10**9)],
)
def test_every_phase_gives_the_same_skeleton(
    monkeypatch: pytest.MonkeyPatch, dense_fraction: float, python_below: int
) -> None:
    # dense_fraction 0: dense to the end; 10: sparse from the third subiteration on.
    # python_below 0: numpy loop to the end; huge: the plain Python loop right after the switch.
    monkeypatch.setattr(skeleton_mod, "_PYTHON_BELOW", python_below)
    for image in _random_images(100, 120):
        frame = np.zeros((image.shape[0] + 2, image.shape[1] + 2), dtype=np.uint8)
        frame[1:-1, 1:-1] = image
        skeleton_mod.thin_inplace(frame, dense_fraction=dense_fraction)
        np.testing.assert_array_equal(frame[1:-1, 1:-1].astype(bool), skimage_skeletonize(image))
        assert not frame[0].any() and not frame[-1].any()


def test_boundary_map_at_full_size() -> None:
    # 512 px partition boundary + border band: ~dozens of subiterations with slow spurs.
    rng = np.random.default_rng(7)
    image = labels_to_boundary(voronoi_labels(512, 384, 120, rng), 3)
    image[:5] = image[-5:] = image[:, :5] = image[:, -5:] = True
    np.testing.assert_array_equal(skeletonize(image), skimage_skeletonize(image))


def test_edge_cases() -> None:
    for image in (
        np.zeros((0, 5), dtype=bool),
        np.zeros((1, 1), dtype=bool),
        np.ones((1, 1), dtype=bool),
        np.ones((1, 9), dtype=bool),
        np.ones((9, 1), dtype=bool),
        np.ones((17, 23), dtype=bool),
        np.zeros((17, 23), dtype=bool),
    ):
        np.testing.assert_array_equal(skeletonize(image), skimage_skeletonize(image))


def test_known_result_and_input_untouched() -> None:
    # a 3-pixel-thick bar thins to its middle row, with the scikit-image variant's one-pixel
    # kink at the right end (nonzero values of any dtype count as foreground)
    image = np.zeros((7, 12), dtype=np.uint8)
    image[2:5, 1:11] = 7
    before = image.copy()
    out = skeletonize(image)
    expected = np.zeros((7, 12), dtype=bool)
    expected[3, 1:9] = True
    expected[2, 9] = True
    assert out.dtype == bool
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(image, before)


def test_rejects_non_2d() -> None:
    with pytest.raises(ValueError, match="2-D"):
        skeletonize(np.zeros((2, 3, 4), dtype=bool))


def test_removal_formulas_equal_the_tables() -> None:
    # The bit-packed subiterations evaluate _REMOVE_TERMS (after sharing sub-products) instead
    # of looking codes up: both must say "remove" for exactly the same 256 neighbourhood codes.
    for parity in (0, 1):
        pairs, terms = skeleton_mod._program(parity)
        for code in range(256):
            values = [(code >> k) & 1 for k in range(8)]
            values += [1 - v for v in values]
            for a, b in pairs:
                values.append(values[a] & values[b])
            remove = any(all(values[lit] for lit in term) for term in terms)
            assert remove == bool(skeleton_mod._REMOVE[parity][code]), (parity, code)


@pytest.mark.parametrize("width", [62, 63, 64, 65, 126, 127, 128, 129, 190, 191, 192])
def test_widths_around_word_boundaries(width: int) -> None:
    # 64 pixels per packed word: carries between words and across row ends, and rows that end
    # exactly on a word boundary; dense to the end so that only the packed path runs.
    rng = np.random.default_rng(width)
    for image in (
        rng.random((23, width)) < 0.6,
        labels_to_boundary(voronoi_labels(37, width, 9, rng), 3),
        np.ones((9, width), dtype=bool),
    ):
        frame = np.zeros((image.shape[0] + 2, width + 2), dtype=np.uint8)
        frame[1:-1, 1:-1] = image
        skeleton_mod.thin_inplace(frame, dense_fraction=0.0)
        np.testing.assert_array_equal(frame[1:-1, 1:-1].astype(bool), skimage_skeletonize(image))
        np.testing.assert_array_equal(skeletonize(image), skimage_skeletonize(image))
