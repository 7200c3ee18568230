"""Photometric augmentation of float image batches (B x 3 x H x W in [0, 1]) without torchvision.

Reproduces the seed's ``RandomApply([GaussianBlur(3, (0.1, 2)), ColorJitter(0.5, 0.5, 0.5,
0.5), RandomGrayscale(0.2)], p=0.25)`` with torchvision's tensor semantics (kernel, blend and
HSV formulas), drawing every random number from an explicit ``torch.Generator`` so a training
step is reproducible. Works on any device; the generator must live on the CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale (ITU-R 601-2)


def rgb_to_grayscale(img: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) float -> (..., 1, H, W) luma."""
    r, g, b = img.unbind(dim=-3)
    return (_GRAY_WEIGHTS[0] * r + _GRAY_WEIGHTS[1] * g + _GRAY_WEIGHTS[2] * b).unsqueeze(-3)


def _blend(img1: torch.Tensor, img2: torch.Tensor, ratio: float) -> torch.Tensor:
    return (ratio * img1 + (1.0 - ratio) * img2).clamp(0.0, 1.0)


def adjust_brightness(img: torch.Tensor, factor: float) -> torch.Tensor:
    """Scale intensities: ``clamp(factor * img, 0, 1)``."""
    return _blend(img, torch.zeros_like(img), factor)


def adjust_contrast(img: torch.Tensor, factor: float) -> torch.Tensor:
    """Blend with the image's mean luma (one mean per image): ``f * img + (1 - f) * mean``."""
    mean = rgb_to_grayscale(img).mean(dim=(-3, -2, -1), keepdim=True)
    return _blend(img, mean, factor)


def adjust_saturation(img: torch.Tensor, factor: float) -> torch.Tensor:
    """Blend with the per-pixel luma: 0 gives gray, 1 the input, >1 more saturated."""
    return _blend(img, rgb_to_grayscale(img), factor)


def rgb_to_hsv(img: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) RGB in [0, 1] -> HSV, each channel in [0, 1] (torchvision's formulas)."""
    r, g, b = img.unbind(dim=-3)
    maxc = img.max(dim=-3).values
    minc = img.min(dim=-3).values
    eqc = maxc == minc
    cr = maxc - minc
    ones = torch.ones_like(maxc)
    s = cr / torch.where(eqc, ones, maxc)
    cr_divisor = torch.where(eqc, ones, cr)
    rc, gc, bc = ((maxc - c) / cr_divisor for c in (r, g, b))
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
    h = torch.fmod((hr + hg + hb) / 6.0 + 1.0, 1.0)
    return torch.stack((h, s, maxc), dim=-3)


def hsv_to_rgb(img: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) HSV in [0, 1] -> RGB in [0, 1]."""
    h, s, v = img.unbind(dim=-3)
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.to(torch.int64) % 6
    p = (v * (1.0 - s)).clamp(0.0, 1.0)
    q = (v * (1.0 - s * f)).clamp(0.0, 1.0)
    t = (v * (1.0 - s * (1.0 - f))).clamp(0.0, 1.0)
    # Sector i picks (r, g, b) from (v, q, p, t) as in the standard HSV cone.
    table = torch.stack(
        (
            torch.stack((v, q, p, p, t, v), dim=-3),
            torch.stack((t, v, v, q, p, p), dim=-3),
            torch.stack((p, p, t, v, v, q), dim=-3),
        ),
        dim=-4,
    )  # (..., 3, 6, H, W)
    index = i.unsqueeze(-3).unsqueeze(-4).expand(*table.shape[:-3], 1, *i.shape[-2:])
    return table.gather(-3, index).squeeze(-3)


def adjust_hue(img: torch.Tensor, hue_factor: float) -> torch.Tensor:
    """Rotate hue by ``hue_factor`` turns (in [-0.5, 0.5]) through HSV."""
    hsv = rgb_to_hsv(img)
    hsv = torch.stack(
        ((hsv[..., 0, :, :] + hue_factor) % 1.0, hsv[..., 1, :, :], hsv[..., 2, :, :]), -3
    )
    return hsv_to_rgb(hsv)


def gaussian_blur(img: torch.Tensor, sigma: float, kernel_size: int = 3) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding (torchvision ``gaussian_blur``)."""
    half = (kernel_size - 1) * 0.5
    x = torch.linspace(-half, half, kernel_size, dtype=img.dtype, device=img.device)
    k1 = torch.exp(-0.5 * (x / sigma) ** 2)
    k1 = k1 / k1.sum()
    kernel = torch.outer(k1, k1)
    shape = img.shape
    flat = img.reshape(-1, 1, shape[-2], shape[-1])
    pad = kernel_size // 2
    flat = F.pad(flat, (pad, pad, pad, pad), mode="reflect")
    return F.conv2d(flat, kernel[None, None]).reshape(shape)


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return float(low + (high - low) * torch.rand(1, generator=generator).item())


def augment_one(
    img: torch.Tensor,
    generator: torch.Generator,
    jitter: float = 0.5,
    grayscale_p: float = 0.2,
) -> torch.Tensor:
    """Blur (3x3, sigma ~ U(0.1, 2)), colour jitter in random order, maybe grayscale.

    Args:
        img: float 3 x H x W in [0, 1].
        generator: CPU generator supplying every random draw.
        jitter: brightness/contrast/saturation factors ~ U(1 - j, 1 + j), hue ~ U(-j, j).
        grayscale_p: probability of the final grayscale step.

    Returns:
        float 3 x H x W in [0, 1].
    """
    out = gaussian_blur(img, _uniform(generator, 0.1, 2.0))
    order = torch.randperm(4, generator=generator).tolist()
    factors = [_uniform(generator, 1 - jitter, 1 + jitter) for _ in range(3)]
    hue = _uniform(generator, -jitter, jitter)
    for fn in order:
        if fn == 0:
            out = adjust_brightness(out, factors[0])
        elif fn == 1:
            out = adjust_contrast(out, factors[1])
        elif fn == 2:
            out = adjust_saturation(out, factors[2])
        else:
            out = adjust_hue(out, hue)
    if torch.rand(1, generator=generator).item() < grayscale_p:
        out = rgb_to_grayscale(out).expand_as(out).clone()
    return out.clamp(0.0, 1.0)


def photometric_augment(
    images: torch.Tensor, generator: torch.Generator, p: float = 0.25
) -> torch.Tensor:
    """The seed's training augmentation, applied to each image independently with prob ``p``.

    Args:
        images: float B x 3 x H x W in [0, 1] (any device).
        generator: CPU ``torch.Generator``; the same seed gives the same output.
        p: probability that an image gets the whole transform (blur, jitter, grayscale).

    Returns:
        float B x 3 x H x W in [0, 1]; the input tensor itself when no image was picked.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be B x 3 x H x W, got {tuple(images.shape)}")
    picked = (torch.rand(images.shape[0], generator=generator) < p).tolist()
    if not any(picked):
        return images
    out = images.clone()
    for i, take in enumerate(picked):
        if take:
            out[i] = augment_one(images[i], generator)
    return out
