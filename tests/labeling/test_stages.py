"""Pipeline stages as plain functions: packing, the model actor class, RLE encoding (no Ray)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from directsam.data.rle import rle_to_mask
from directsam.inference.predictor import BoundaryPredictor
from directsam.inference.preprocess import preprocess_images
from directsam.labeling.stages import (
    PSEUDO_BITS,
    PSEUDO_COUNTS,
    LabelPredictor,
    encode_pseudo,
    pack_bits,
    unpack_bits,
)

R = 64


@pytest.mark.parametrize("side", [8, 13, 64])
def test_pack_bits_is_numpy_packbits(side):
    rng = np.random.default_rng(side)
    mask = rng.random((3, side, side)) < 0.3
    packed = pack_bits(torch.from_numpy(mask)).numpy()
    expected = np.packbits(mask.reshape(3, -1), axis=1)
    np.testing.assert_array_equal(packed, expected)
    for i in range(3):
        np.testing.assert_array_equal(unpack_bits(packed[i], side), mask[i])


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4, R, R, 3), dtype=np.uint8)
    return {
        "image_id": np.array(["a", "b", "c", "d"], dtype=object),
        "block": np.array([0, 0, 1, 1]),
        "image": images,
        "error": np.array([None, "image_decode: c: broken", None, None], dtype=object),
    }


def test_label_predictor_thresholds_the_predictor_output(batch):
    stage = LabelPredictor("scratch:tiny", R, threshold=0.5, device="cpu", dtype="fp32")
    out = stage(batch)
    assert "image" not in out and out["block"].tolist() == [0, 0, 1, 1]
    assert out[PSEUDO_BITS].shape == (4, R * R // 8)
    reference = BoundaryPredictor("scratch:tiny", device="cpu", dtype="fp32", resolution=R)
    ok = [0, 2, 3]
    probs = reference.predict_pixels(preprocess_images(list(batch["image"][ok]), R), R).numpy()
    for j, i in enumerate(ok):
        np.testing.assert_array_equal(unpack_bits(out[PSEUDO_BITS][i], R), probs[j] >= 0.5)
    assert not out[PSEUDO_BITS][1].any() and out["error"][1] == "image_decode: c: broken"
    # RLE stage: decodes to the same map at R x R; failed rows get no RLE.
    enc = encode_pseudo(out, R)
    assert PSEUDO_BITS not in enc and enc[PSEUDO_COUNTS][1] is None
    for i in ok:
        mask = rle_to_mask({"size": [R, R], "counts": enc[PSEUDO_COUNTS][i]})
        np.testing.assert_array_equal(mask, unpack_bits(out[PSEUDO_BITS][i], R))


def test_model_failure_is_one_rows_error(batch, monkeypatch):
    stage = LabelPredictor("scratch:tiny", R, threshold=0.5, device="cpu", dtype="fp32")
    real = stage._forward
    poisoned = batch["image"][3].copy()

    def flaky(images):
        if any((im == poisoned).all() for im in images):
            raise RuntimeError("CUDA out of memory (simulated)")
        return real(images)

    monkeypatch.setattr(stage, "_forward", flaky)
    out = stage(batch)
    assert out["error"][3].startswith("model_failed: d: RuntimeError: CUDA out of memory")
    assert out["error"][0] is None and out["error"][2] is None and out[PSEUDO_BITS][0].any()


@pytest.mark.gpu
def test_label_predictor_on_cuda_runs_bf16_and_matches_the_predictor(batch):
    stage = LabelPredictor("scratch:tiny", R, threshold=0.5, device="cuda", dtype="auto")
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    assert stage.predictor.dtype == expected
    out = stage(batch)
    reference = BoundaryPredictor("scratch:tiny", device="cuda", dtype="auto", resolution=R)
    pixels = preprocess_images(list(batch["image"][[0, 2, 3]]), R, device="cuda")
    probs = reference.predict_pixels(pixels, R).float().cpu().numpy()
    for j, i in enumerate([0, 2, 3]):
        agree = (unpack_bits(out[PSEUDO_BITS][i], R) == (probs[j] >= 0.5)).mean()
        assert agree > 0.99  # same weights and dtype; only the resize path may differ
