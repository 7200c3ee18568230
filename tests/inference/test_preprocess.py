"""preprocess_images agrees with Hugging Face's SegformerImageProcessor (PIL backend)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from directsam.inference.preprocess import IMAGENET_MEAN, IMAGENET_STD, preprocess_images
from tests.inference.synthetic import textured_image


def _hf_pixels(image: np.ndarray, resolution: int) -> torch.Tensor:
    # transformers 5 names the PIL implementation *Pil; the default class needs torchvision.
    try:
        from transformers.models.segformer.image_processing_pil_segformer import (
            SegformerImageProcessorPil as Processor,
        )
    except ImportError:  # transformers 4.x: the default processor is the PIL one
        from transformers import SegformerImageProcessor as Processor

    processor = Processor(do_resize=True, size={"height": resolution, "width": resolution})
    return processor(image, return_tensors="pt").pixel_values


@pytest.mark.parametrize(
    "height, width, resolution", [(1500, 2250, 1024), (480, 640, 1024), (480, 640, 256)]
)
def test_matches_hf_processor(height, width, resolution):
    image = textured_image(height, width)
    ours = preprocess_images([image], resolution)
    ref = _hf_pixels(image, resolution)
    assert ours.shape == ref.shape == (1, 3, resolution, resolution)
    assert ours.dtype == torch.float32
    diff = (ours - ref).abs()
    assert diff.mean().item() <= 0.005
    assert diff.max().item() <= 0.03


def test_list_and_tensor_inputs_agree_and_sizes_may_differ():
    a, b = textured_image(120, 90, seed=1), textured_image(120, 90, seed=2)
    from_list = preprocess_images([a, b], 64)
    from_tensor = preprocess_images(torch.from_numpy(np.stack([a, b])), 64)
    assert torch.equal(from_list, from_tensor)
    mixed = preprocess_images([a, textured_image(50, 200)], 64)
    assert mixed.shape == (2, 3, 64, 64)
    assert torch.equal(mixed[0], from_list[0])


def test_constant_image_normalises_exactly():
    image = np.full((37, 53, 3), (10, 128, 250), dtype=np.uint8)
    out = preprocess_images([image], 32)
    for c, value in enumerate((10, 128, 250)):
        expected = (value / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
        assert torch.allclose(out[0, c], torch.full((32, 32), expected), atol=1e-5)


def test_bad_inputs():
    with pytest.raises(ValueError, match="image 0"):
        preprocess_images([np.zeros((8, 8, 3), np.float32)], 32)
    with pytest.raises(ValueError, match="uint8"):
        preprocess_images(torch.zeros(1, 8, 8, 3), 32)
    assert preprocess_images([], 32).shape == (0, 3, 32, 32)
