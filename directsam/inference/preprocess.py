"""RGB uint8 images -> normalised SegFormer input: square resize, /255, ImageNet mean/std.

Matches Hugging Face's ``SegformerImageProcessor`` (PIL backend), which the released DirectSAM
checkpoints were trained with, while running batched on tensors (and on the GPU when given).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _resize_uint8(batch: torch.Tensor, resolution: int) -> torch.Tensor:
    """(B, 3, H, W) uint8 -> (B, 3, R, R) float32 on the 0..255 grid."""
    import torch
    import torch.nn.functional as F

    x = batch.float()
    if x.shape[-2:] != (resolution, resolution):
        x = F.interpolate(
            x, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False
        )
    # PIL resizes uint8 images and returns uint8: rounding here reproduces the quantisation the
    # checkpoints were trained with (and halves the gap to the HF processor).
    return torch.clamp(x.round_(), 0.0, 255.0)


def as_tensor(image: np.ndarray) -> torch.Tensor:
    """Zero-copy view of a (possibly read-only) uint8 array; it is only ever read."""
    import warnings

    import torch

    image = np.ascontiguousarray(image)
    if image.flags.writeable:
        return torch.from_numpy(image)
    # Decoded images are often read-only views of PIL buffers; torch warns on wrapping them
    # even though nothing writes to the tensor (the resize allocates a new one).
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(image)


def preprocess_images(
    images: Sequence[np.ndarray] | torch.Tensor,
    resolution: int,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Resize and normalise RGB images for a SegFormer.

    Args:
        images: a list of RGB uint8 ``(H, W, 3)`` arrays (sizes may differ) or a uint8 tensor
            ``(B, H, W, 3)``.
        resolution: side ``R`` of the square model input.
        device: where to compute (the uint8 pixels are moved first: 4x less to transfer than
            float); default: the tensor's device, or CPU for numpy input.

    Returns:
        float32 tensor ``(B, 3, R, R)``: ``(resize(image) / 255 - mean) / std`` with ImageNet
        mean/std, antialiased bilinear square resize (aspect ratio not kept).

    Raises:
        ValueError: an image is not ``(H, W, 3)`` uint8, or ``resolution < 1``.
    """
    import torch

    if resolution < 1:
        raise ValueError(f"resolution must be >= 1, got {resolution}")
    if isinstance(images, torch.Tensor):
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(
                f"expected a uint8 (B, H, W, 3) tensor, got {images.dtype} {tuple(images.shape)}"
            )
        batch = images.to(device) if device is not None else images
        resized = _resize_uint8(batch.permute(0, 3, 1, 2), resolution)
    else:
        target = torch.device(device) if device is not None else torch.device("cpu")
        out = []
        for i, image in enumerate(images):
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(
                    f"image {i}: expected uint8 (H, W, 3), got {image.dtype} {image.shape}"
                )
            pixels = as_tensor(image).to(target)
            out.append(_resize_uint8(pixels.permute(2, 0, 1)[None], resolution))
        if not out:
            return torch.empty((0, 3, resolution, resolution), device=target)
        resized = torch.cat(out)
    mean, std = _mean_std(str(resized.device))
    return resized.sub_(mean).div_(std).contiguous()


@functools.lru_cache(maxsize=8)
def _mean_std(device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """ImageNet mean and std x 255 as ``(1, 3, 1, 1)`` float32 on ``device``, made once per
    device: building them per call is a host-to-device copy that waits for the GPU, and the
    GPU decode path preprocesses one image at a time."""
    import torch

    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1) * 255.0
    return mean, std
