"""Pipeline stages as plain functions: the model actor class, RLE encoding, and the GPU decode
path (bytes to the actor) against the CPU path, row for row (no Ray)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from directsam.data.rle import mask_to_rle, rle_to_mask
from directsam.inference.predictor import BoundaryPredictor
from directsam.inference.preprocess import preprocess_images
from directsam.labeling.stages import (
    PSEUDO_BITS,
    PSEUDO_COUNTS,
    LabelPredictor,
    encode_pseudo,
    prepare_rows,
    unpack_bits,
)
from tests.inference.image_cases import encode, jpeg_with_orientation
from tests.labeling.corrupt import corrupt_sa1b

R = 64


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
    for j, i in enumerate(ok):
        mask = rle_to_mask({"size": [R, R], "counts": enc[PSEUDO_COUNTS][i]})
        np.testing.assert_array_equal(mask, unpack_bits(out[PSEUDO_BITS][i], R))
        assert enc[PSEUDO_COUNTS][i] == mask_to_rle(probs[j] >= 0.5)["counts"]


def test_model_failure_is_one_rows_error(batch, monkeypatch):
    stage = LabelPredictor("scratch:tiny", R, threshold=0.5, device="cpu", dtype="fp32")
    real = stage._forward
    poisoned = batch["image"][3].copy()

    poisoned_pixels = preprocess_images([poisoned], R)[0]

    def flaky(pixels):
        if any(torch.equal(p, poisoned_pixels) for p in pixels):
            raise RuntimeError("CUDA out of memory (simulated)")
        return real(pixels)

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


def _listing_batch(root):
    from directsam.data.sources import SourceSpec, list_source

    rows = [
        dict(i.to_row(), block=0) for i in list_source(SourceSpec("sa1b", str(root), dataset="sa"))
    ]
    return {k: np.array([r[k] for r in rows], dtype=object) for k in rows[0]}


def test_gpu_decode_path_gives_the_cpu_paths_rows(tmp_path):
    """Bytes to the actor (header-only CPU stage, decode in the actor, here by Pillow: no GPU)
    gives every row exactly as the CPU path: errors and their codes, sizes, both boundaries."""
    expected = corrupt_sa1b(tmp_path)
    first, second = tmp_path / "sa_000000", tmp_path / "sa_000001"
    pixels = np.asarray(Image.open(second / "sa_7.jpg").convert("RGB"))
    (second / "sa_7.jpg").write_bytes(jpeg_with_orientation(pixels, 6))  # 64x48 vs 48x64 masks
    (second / "sa_8.jpg").write_bytes(encode(Image.fromarray(pixels[:, :, 0]), "JPEG"))
    (second / "sa_9.jpg").write_bytes(encode(Image.fromarray(pixels).convert("CMYK"), "JPEG"))
    (second / "sa_10.jpg").write_bytes(encode(Image.fromarray(pixels), "JPEG", progressive=True))
    (first / "sa_1.json").write_text("{broken")  # truncated image AND bad annotation
    expected.update(sa_7="rle_size_mismatch", sa_8=None, sa_9=None, sa_10=None)

    batch = _listing_batch(tmp_path)
    stage = LabelPredictor("scratch:tiny", R, 0.5, device="cpu", dtype="fp32", image_decode="auto")
    cpu = encode_pseudo(stage(prepare_rows(batch, R, 9)), R)
    header_only = prepare_rows(batch, R, 9, decode_images=False)
    pending = {i for i, e in zip(header_only["image_id"], header_only["pending_error"]) if e}
    assert "image" not in header_only and pending == {"sa_1", "sa_5", "sa_6", "sa_7"}
    gpu = encode_pseudo(stage(header_only), R)

    for key in ("image_id", "error", "height", "width", "human_counts", "pseudo_counts"):
        assert list(gpu[key]) == list(cpu[key]), key
    codes = {i: (e or "").split(":")[0] or None for i, e in zip(gpu["image_id"], gpu["error"])}
    assert codes == expected
    assert codes["sa_1"] == "image_decode"  # the decode error wins over the annotation's
    assert sum(c is None for c in gpu["pseudo_counts"]) == sum(e is not None for e in gpu["error"])
    assert set(gpu) == set(cpu)


def test_gpu_required_without_a_decoder_fails_fast():
    with pytest.raises(RuntimeError, match="compute.image_decode=gpu: no GPU JPEG decoder"):
        LabelPredictor("scratch:tiny", R, 0.5, device="cpu", dtype="fp32", image_decode="gpu")


@pytest.mark.gpu
def test_gpu_decode_on_cuda_decodes_plain_jpegs_on_the_device(tmp_path):
    """The real GPU path (nvimgcodec or torchvision): plain JPEGs decoded by nvJPEG, the rest
    by Pillow; rows agree with the CPU path up to decode/resize rounding."""
    from directsam.data.sample import make_sample
    from directsam.inference.bytes_input import bytes_to_pixels

    root = make_sample(tmp_path, num_images=6, seed=2, kind="sa1b", height=300, width=450)
    batch = _listing_batch(root)
    stage = LabelPredictor("scratch:tiny", R, 0.5, device="cuda", dtype="auto", image_decode="gpu")
    assert stage.decoder is not None
    header_only = prepare_rows(batch, R, 9, decode_images=False)
    blobs = list(header_only["image_bytes"])
    dec = bytes_to_pixels(blobs, list(batch["image_id"]), R, "cuda", stage.decoder)
    assert all(dec.on_gpu) and not any(dec.errors)
    cpu_dec = bytes_to_pixels(blobs, list(batch["image_id"]), R, "cuda", None)
    assert (dec.pixels - cpu_dec.pixels).abs().mean() < 0.05  # ~1 grey level of 255 / std
    gpu = encode_pseudo(stage(header_only), R)
    cpu = encode_pseudo(stage(prepare_rows(batch, R, 9)), R)
    assert list(gpu["error"]) == list(cpu["error"]) == [None] * 6
    assert list(gpu["human_counts"]) == list(cpu["human_counts"])
    for a, b in zip(gpu["pseudo_counts"], cpu["pseudo_counts"]):
        ma, mb = (rle_to_mask({"size": [R, R], "counts": c}) for c in (a, b))
        assert (ma == mb).mean() > 0.98
