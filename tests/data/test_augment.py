"""Photometric augmentation: exact per-op math, HSV against colorsys, determinism, ranges."""

from __future__ import annotations

import colorsys

import pytest
import torch

from directsam.data.augment import (
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    augment_one,
    gaussian_blur,
    hsv_to_rgb,
    photometric_augment,
    rgb_to_grayscale,
    rgb_to_hsv,
)


def images(b: int = 6, h: int = 12, w: int = 10, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_p_zero_is_identity():
    x = images()
    assert photometric_augment(x, torch.Generator().manual_seed(0), p=0.0) is x


def test_p_one_changes_every_image_deterministically():
    x = images()
    a = photometric_augment(x, torch.Generator().manual_seed(1), p=1.0)
    b = photometric_augment(x, torch.Generator().manual_seed(1), p=1.0)
    c = photometric_augment(x, torch.Generator().manual_seed(2), p=1.0)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert all(not torch.equal(a[i], x[i]) for i in range(len(x)))
    assert a.min() >= 0 and a.max() <= 1 and a.shape == x.shape and a.dtype == x.dtype


def test_default_p_picks_about_a_quarter():
    x = images(b=400, h=4, w=4)
    out = photometric_augment(x, torch.Generator().manual_seed(0))
    changed = sum(not torch.equal(out[i], x[i]) for i in range(len(x)))
    assert 60 <= changed <= 140
    assert not torch.equal(x, out)  # input untouched, a new tensor returned


def test_grayscale_step_gives_equal_channels():
    x = images(b=1)[0]
    gen = torch.Generator().manual_seed(0)
    out = augment_one(x, gen, grayscale_p=1.0)
    assert torch.allclose(out[0], out[1]) and torch.allclose(out[1], out[2])
    gray = rgb_to_grayscale(x)
    assert gray.shape == (1, 12, 10)
    assert torch.allclose(gray[0], 0.2989 * x[0] + 0.587 * x[1] + 0.114 * x[2])


def test_brightness_math():
    x = images(b=1)
    assert torch.allclose(adjust_brightness(x, 0.5), x * 0.5)
    assert torch.allclose(adjust_brightness(x, 1.5), (x * 1.5).clamp(max=1.0))


def test_contrast_math():
    x = images(b=2)
    out = adjust_contrast(x, 0.5)
    for i in range(2):
        mean = rgb_to_grayscale(x[i]).mean()
        assert torch.allclose(out[i], (0.5 * x[i] + 0.5 * mean).clamp(0, 1))
    assert torch.allclose(
        adjust_contrast(x, 0.0)[0], rgb_to_grayscale(x[0]).mean().expand(3, 12, 10)
    )


def test_saturation_zero_is_gray_and_one_is_identity():
    x = images(b=1)
    gray = adjust_saturation(x, 0.0)
    assert torch.allclose(gray[:, 0], gray[:, 1]) and torch.allclose(gray[:, 1], gray[:, 2])
    assert torch.allclose(adjust_saturation(x, 1.0), x)


def test_hsv_matches_colorsys_and_round_trips():
    x = images(b=1, h=5, w=7)[0]
    hsv = rgb_to_hsv(x)
    for y in range(5):
        for xx in range(7):
            expected = colorsys.rgb_to_hsv(*x[:, y, xx].tolist())
            assert torch.allclose(hsv[:, y, xx], torch.tensor(expected), atol=1e-5)
    assert torch.allclose(hsv_to_rgb(hsv), x, atol=1e-5)


def test_hue_shift():
    red = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1)
    assert torch.allclose(
        adjust_hue(red, 1 / 3), torch.tensor([0.0, 1.0, 0.0]).view(3, 1, 1), atol=1e-5
    )
    assert torch.allclose(
        adjust_hue(red, -1 / 3), torch.tensor([0.0, 0.0, 1.0]).view(3, 1, 1), atol=1e-5
    )
    x = images(b=1)
    assert torch.allclose(adjust_hue(x, 0.0), x, atol=1e-5)


def test_gaussian_blur():
    const = torch.full((1, 3, 6, 6), 0.3)
    assert torch.allclose(gaussian_blur(const, 1.0), const)
    x = images(b=1, h=6, w=6)
    sigma = 0.8
    w1 = torch.exp(-0.5 * (torch.tensor([-1.0, 0.0, 1.0]) / sigma) ** 2)
    w1 = w1 / w1.sum()
    k = torch.outer(w1, w1)
    out = gaussian_blur(x, sigma)
    expected = (x[0, 1, 2:5, 2:5] * k).sum()  # an interior pixel (3, 3) of channel 1
    assert torch.allclose(out[0, 1, 3, 3], expected, atol=1e-6)
    # Reflect padding at the corner: neighbours mirror across the edge.
    padded = torch.nn.functional.pad(x[:, 1:2], (1, 1, 1, 1), mode="reflect")[0, 0]
    assert torch.allclose(out[0, 1, 0, 0], (padded[0:3, 0:3] * k).sum(), atol=1e-6)


def test_rejects_bad_shapes():
    with pytest.raises(ValueError, match="B x 3 x H x W"):
        photometric_augment(torch.rand(3, 8, 8), torch.Generator())
