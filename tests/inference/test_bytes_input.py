"""bytes -> model input: the CPU fallback equals the CPU path exactly; a GPU decoder's rows
are oriented and resized on the device; failures fall back per image with the same errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from directsam.data.decode import decode_image, resize_rgb
from directsam.inference.bytes_input import bytes_to_pixels
from directsam.inference.gpu_decode import apply_orientation, gpu_decodable
from directsam.inference.predictor import BoundaryPredictor
from directsam.inference.preprocess import preprocess_images
from directsam.schema import InputError
from tests.inference.image_cases import GPU_OK, image_cases, raw_jpeg_pixels

R = 32
NAMES = sorted(GPU_OK) + ["empty"]


@pytest.fixture(scope="module")
def blobs():
    cases = image_cases()
    cases["empty"] = b""
    return [cases[n] for n in NAMES]


def cpu_path(data: bytes, name: str) -> tuple[torch.Tensor | None, str | None]:
    """Today's CPU tasks + actor: decode_image, resize_rgb, then preprocess at R."""
    try:
        small = resize_rgb(decode_image(data, name), R)
    except InputError as err:
        return None, str(err)
    return preprocess_images(torch.from_numpy(small.copy())[None], R), None


def test_without_a_gpu_decoder_every_row_equals_the_cpu_path(blobs):
    dec = bytes_to_pixels(blobs, NAMES, R, "cpu", decoder=None)
    assert dec.pixels.shape == (len(NAMES), 3, R, R) and not any(dec.on_gpu)
    for i, name in enumerate(NAMES):
        pixels, error = cpu_path(blobs[i], name)
        assert dec.errors[i] == error, name
        if error is None:
            torch.testing.assert_close(dec.pixels[i : i + 1], pixels, rtol=0, atol=0)
            assert dec.sizes[i] == decode_image(blobs[i], name).shape[:2]
        else:
            assert not dec.pixels[i].any() and dec.sizes[i] == (0, 0)
    codes = {n: (e or "").split(":")[0] for n, e in zip(NAMES, dec.errors)}
    assert codes["truncated"] == codes["garbage"] == codes["empty"] == "image_decode"


class PillowAsGpu:
    """Stands in for nvJPEG on the CPU: decodes plain JPEGs without EXIF, fails where told."""

    name = "fake"

    def __init__(self, fail_on: set[bytes] = frozenset(), raise_all: bool = False):
        self.fail_on, self.raise_all, self.seen = fail_on, raise_all, []

    def decode(self, blobs):
        self.seen.extend(blobs)
        if self.raise_all:
            raise RuntimeError("CUDA error: out of memory (simulated)")
        return [
            None if b in self.fail_on else torch.from_numpy(raw_jpeg_pixels(b).copy())
            for b in blobs
        ]


def test_gpu_rows_are_oriented_and_resized_on_the_device(blobs):
    decoder = PillowAsGpu(fail_on={blobs[NAMES.index("gray")]})
    dec = bytes_to_pixels(blobs, NAMES, R, "cpu", decoder=decoder)
    # Only plain, complete JPEGs were offered to the decoder.
    assert decoder.seen == [b for b in blobs if b and gpu_decodable(b)]
    assert {n for n, g in zip(NAMES, dec.on_gpu) if g} == {"rgb", "exif6", "exif3"}
    for i, name in enumerate(NAMES):
        pixels, error = cpu_path(blobs[i], name)
        assert dec.errors[i] == error, name
        if dec.on_gpu[i]:
            orientation = {"exif6": 6, "exif3": 3}.get(name, 1)
            upright = apply_orientation(torch.from_numpy(raw_jpeg_pixels(blobs[i]).copy()),
                                        orientation)  # fmt: skip
            expected = preprocess_images(upright.contiguous()[None], R)
            torch.testing.assert_close(dec.pixels[i : i + 1], expected, rtol=0, atol=0)
            assert dec.sizes[i] == tuple(upright.shape[:2])
            # The device resize is close to Pillow's, not equal (docs: about one grey level).
            assert (dec.pixels[i] - pixels[0]).abs().mean() < 0.05
        elif error is None:  # Pillow fallback, including the image the decoder failed on
            torch.testing.assert_close(dec.pixels[i : i + 1], pixels, rtol=0, atol=0)
    assert dec.sizes[NAMES.index("exif6")] == (84, 60)  # orientation 6 swaps the sides


def test_a_failing_decoder_call_falls_back_to_the_cpu_for_the_batch(blobs):
    dec = bytes_to_pixels(blobs, NAMES, R, "cpu", decoder=PillowAsGpu(raise_all=True))
    reference = bytes_to_pixels(blobs, NAMES, R, "cpu", decoder=None)
    assert not any(dec.on_gpu) and dec.errors == reference.errors
    torch.testing.assert_close(dec.pixels, reference.pixels, rtol=0, atol=0)


def test_predictor_predict_bytes_matches_predict_on_decoded_images(blobs):
    predictor = BoundaryPredictor("scratch:tiny", device="cpu", dtype="fp32", resolution=R)
    probs, errors = predictor.predict_bytes(blobs, NAMES)
    ok = [i for i, e in enumerate(errors) if e is None]
    assert len(ok) == len(NAMES) - 3 and probs.shape == (len(NAMES), R, R)
    images = [resize_rgb(decode_image(blobs[i], NAMES[i]), R) for i in ok]
    np.testing.assert_array_equal(probs[ok], predictor.predict(images))
    assert not probs[[i for i, e in enumerate(errors) if e]].any()
