"""BoundaryPredictor on CPU with a tiny random model: shapes, ranges, batching, parity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from directsam.inference.predictor import (
    BoundaryPredictor,
    max_batch_for,
    resolve_dtype,
)
from directsam.inference.preprocess import preprocess_images
from directsam.model import save_checkpoint
from tests.inference.synthetic import textured_image

RES = 64


@pytest.fixture(scope="module")
def predictor():
    return BoundaryPredictor("scratch:tiny", device="cpu", dtype="auto", resolution=RES)


@pytest.fixture(scope="module")
def images():
    return [textured_image(120, 90, seed=i) for i in range(4)] + [textured_image(70, 150, seed=9)]


def test_predict_shape_range_dtype(predictor, images):
    assert predictor.dtype == torch.float32
    probs = predictor.predict(images)
    assert isinstance(probs, np.ndarray) and probs.dtype == np.float32
    assert probs.shape == (5, RES, RES)
    assert probs.min() >= 0.0 and probs.max() <= 1.0
    assert probs.std() > 0  # a real forward pass, not a constant
    sized = predictor.predict(images[:2], out_size=(120, 90))
    assert sized.shape == (2, 120, 90)
    assert predictor.predict(images[:1], out_size=32).shape == (1, 32, 32)


def test_predict_pixels_equals_plain_forward(predictor, images):
    pixels = preprocess_images(images, RES)
    ours = predictor.predict_pixels(pixels, out_size=100)
    with torch.inference_mode():
        logits = predictor.model(pixel_values=pixels).logits
        ref = torch.sigmoid(F.interpolate(logits, size=(100, 100), mode="bilinear")[:, 0])
    assert ours.shape == (5, 100, 100) and ours.dtype == torch.float32
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=0)


def test_batch_splitting_is_equal_and_even(images):
    whole = BoundaryPredictor("scratch:tiny", device="cpu", resolution=RES)
    single = BoundaryPredictor("scratch:tiny", device="cpu", resolution=RES, max_batch=1)
    np.testing.assert_allclose(single.predict(images), whole.predict(images), atol=1e-6, rtol=0)

    two = BoundaryPredictor("scratch:tiny", device="cpu", resolution=RES, max_batch=2)
    sizes = []
    forward = two._forward
    two._forward = lambda pixel_values: (
        sizes.append(len(pixel_values)) or forward(pixel_values=pixel_values)
    )
    two.predict(images)
    assert sizes == [2, 2, 1]


def test_max_batch_is_capped_by_int32_upsample_limit():
    # B5 at 1800 px: 768 channels x 450 x 450 per image -> 13 images below 2**31 elements.
    assert max_batch_for(1800, 768) == 13
    assert 16 * 768 * 450 * 450 >= 2**31 > 13 * 768 * 450 * 450
    assert max_batch_for(1024, 256) == (2**31 - 1) // (256 * 256 * 256)
    p = BoundaryPredictor("scratch:tiny", device="cpu", resolution=RES, max_batch=10**9)
    assert p.max_batch == max_batch_for(RES, 32)


def test_bf16_on_cpu_runs(images):
    p = BoundaryPredictor("scratch:tiny", device="cpu", dtype="bf16", resolution=RES)
    assert next(p.model.parameters()).dtype == torch.bfloat16
    probs = p.predict(images[:2])
    ref = BoundaryPredictor("scratch:tiny", device="cpu", resolution=RES).predict(images[:2])
    assert probs.dtype == np.float32
    assert np.abs(probs - ref).max() < 0.05


def test_pyramid_predict_runs(predictor):
    image = textured_image(200, 260, seed=3)
    probs = predictor.predict([image], pyramid=True)
    assert probs.shape == (1, RES, RES) and 0 <= probs.min() <= probs.max() <= 1
    full = predictor.predict([image], out_size=(200, 260), pyramid=True, pyramid_layers=2)
    assert full.shape == (1, 200, 260)
    # The top 30 rows lie in the zeroed band of every crop that covers them (all start at
    # y0 = 0), so there the result is the global map over layers + 1.
    plain = predictor.predict([image], out_size=(200, 260))
    np.testing.assert_allclose(full[0, :30], plain[0, :30] / 3, atol=1e-6)
    assert not np.allclose(full[0, 60:140, 60:200], plain[0, 60:140, 60:200] / 3, atol=1e-3)


def test_predict_native_matches_sized_predict(predictor, images):
    native = predictor.predict_native(images)
    assert [m.shape for m in native] == [im.shape[:2] for im in images]
    sized = predictor.predict(images[:1], out_size=images[0].shape[:2])[0]
    np.testing.assert_allclose(native[0], sized, atol=1e-6, rtol=0)
    assert predictor.predict_native([]) == []


def test_attributes_and_meta(tmp_path, predictor):
    assert predictor.checkpoint_sha == "scratch:tiny:0"
    assert predictor.meta == {}
    save_checkpoint(predictor.model, tmp_path / "ckpt", {"resolution": RES, "threshold": 0.3})
    p = BoundaryPredictor(str(tmp_path / "ckpt"), device="cpu", resolution=RES)
    assert p.meta["threshold"] == 0.3 and p.meta["resolution"] == RES
    assert len(p.checkpoint_sha) == 16


def test_bad_arguments():
    with pytest.raises(ValueError, match="dtype"):
        resolve_dtype("int8", torch.device("cpu"))
    with pytest.raises(ValueError, match="resolution"):
        BoundaryPredictor("scratch:tiny", device="cpu", resolution=16)
    with pytest.raises(ValueError, match="max_batch"):
        BoundaryPredictor("scratch:tiny", device="cpu", max_batch=0)
