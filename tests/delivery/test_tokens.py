"""Token API: tokens are the connected components of the thresholded map, RLEs tile them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from directsam.data.rle import mask_to_rle, rle_to_mask
from directsam.data.sa1b import parse_sa1b_annotation
from directsam.delivery.stage import TokenizeStage
from directsam.delivery.tokens import get_predictor, tokenize
from directsam.inference.tokens import contour_confidence, labels_to_records, labels_to_rles

EIGHT = np.ones((3, 3), dtype=bool)


def _png(image: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def probs(tiny_checkpoint, images):
    return get_predictor(str(tiny_checkpoint)).predict_native(images)


def test_labels_to_rles_equals_mask_to_rle():
    labels = np.zeros((7, 9), dtype=np.int32)
    labels[0:3, 0:4] = 1  # touches the first pixel
    labels[4:7, 5:9] = 2  # touches the last pixel
    labels[5, 1] = 3  # a single pixel
    labels[0, 8] = 4
    labels[3, :] = 0
    rles = labels_to_rles(labels)
    assert len(rles) == 4
    for k, rle in enumerate(rles, start=1):
        assert rle == mask_to_rle(labels == k)
    assert labels_to_rles(np.zeros((3, 3), dtype=np.int32)) == []
    assert labels_to_rles(np.ones((3, 3), dtype=np.int32)) == [mask_to_rle(np.ones((3, 3)))]


def test_tokens_are_connected_components_and_tile_the_map(tiny_checkpoint, images, probs):
    threshold = float(np.median(probs[0]))
    results = tokenize(images, str(tiny_checkpoint), threshold=threshold, batch_size=2)
    assert len(results) == len(images)
    for image, prob, result in zip(images, probs, results):
        h, w = image.shape[:2]
        inside = prob < threshold
        ref, n_ref = ndimage.label(inside, structure=EIGHT)
        masks = [rle_to_mask(r["segmentation"], (h, w)) for r in result["masks"]]
        assert len(masks) == n_ref >= 2
        # Same components as the reference labelling (a set of pixel sets).
        ref_sets = {frozenset(np.flatnonzero(ref == k)) for k in range(1, n_ref + 1)}
        assert {frozenset(np.flatnonzero(m)) for m in masks} == ref_sets
        # Tiling: disjoint, and together exactly the non-boundary pixels.
        stack = np.stack(masks)
        assert (stack.sum(0) <= 1).all()
        np.testing.assert_array_equal(stack.any(0), inside)
        # Label map agrees with the records; records largest first; area/bbox are exact.
        label_map = result["label_map"]
        assert label_map.dtype == np.int32 and label_map.shape == (h, w)
        areas = [r["area"] for r in result["masks"]]
        assert areas == sorted(areas, reverse=True)
        for k, (rec, mask) in enumerate(zip(result["masks"], masks), start=1):
            np.testing.assert_array_equal(label_map == k, mask)
            ys, xs = np.nonzero(mask)
            assert rec["area"] == mask.sum()
            assert rec["bbox"] == [
                xs.min(),
                ys.min(),
                xs.max() - xs.min() + 1,
                ys.max() - ys.min() + 1,
            ]
            x, y = rec["point_coords"][0]
            assert mask[int(y), int(x)]
            assert rec["crop_box"] == [0, 0, w, h]
            assert set(rec) == {
                "segmentation",
                "area",
                "bbox",
                "boundary_confidence",
                "point_coords",
                "crop_box",
            }


def test_contour_confidence_matches_per_token_loop(probs):
    prob = probs[1]
    threshold = float(np.median(prob))
    labels, n = ndimage.label(prob < threshold, structure=EIGHT)
    got = contour_confidence(labels, prob)
    for k in range(1, n + 1):
        ring = ndimage.binary_dilation(labels == k, structure=EIGHT) & (labels == 0)
        expected = prob[ring].astype(np.float64).mean() if ring.any() else np.nan
        np.testing.assert_allclose(got[k - 1], expected, rtol=1e-9, equal_nan=True)
    assert (got[~np.isnan(got)] >= threshold).all()  # contour pixels are boundary pixels
    records = labels_to_records(labels.astype(np.int32), prob)
    assert len(records) == n


def test_batching_and_denoise(tiny_checkpoint, images, probs):
    threshold = float(np.median(probs[0]))
    one = [tokenize(im, str(tiny_checkpoint), threshold=threshold)[0] for im in images]
    many = tokenize(images, str(tiny_checkpoint), threshold=threshold, batch_size=3)
    for a, b in zip(one, many):
        assert [r["segmentation"] for r in a["masks"]] == [r["segmentation"] for r in b["masks"]]
    capped = tokenize(images[:1], str(tiny_checkpoint), threshold=threshold, max_tokens=2)[0]
    assert 1 <= len(capped["masks"]) <= 2
    assert capped["label_map"].max() == len(capped["masks"])
    with pytest.raises(ValueError, match="threshold"):
        tokenize(images[:1], str(tiny_checkpoint), threshold=1.5)


def test_tokenize_stage_writes_sa1b_documents_and_error_rows(tiny_checkpoint, images, probs):
    threshold = float(np.median(probs[0]))
    stage = TokenizeStage(str(tiny_checkpoint), threshold=threshold)
    batch = {
        "image_id": np.array(["sa_11", "bad", "sa_12"], dtype=object),
        "source_uri": np.array(["/x/sa_11.png", "/x/bad.jpg", "/x/sa_12.png"], dtype=object),
        "image_bytes": np.array([_png(images[0]), b"not an image", _png(images[1])], dtype=object),
        "error": np.array([None, None, None], dtype=object),
    }
    out = stage(batch)
    assert "image_bytes" not in out
    assert out["error"][0] == "" and out["error"][2] == ""
    assert out["error"][1].startswith("image_decode: ")
    assert out["sa1b_json"][1] == "" and out["num_tokens"][1] == 0
    expected = tokenize([images[0], images[1]], str(tiny_checkpoint), threshold=threshold)
    for i, ref in zip((0, 2), expected):
        doc = json.loads(out["sa1b_json"][i])
        info, rles = parse_sa1b_annotation(out["sa1b_json"][i].encode(), "doc")
        assert info["image_id"] == batch["image_id"][i]
        assert doc["image"]["image_id"] == int(batch["image_id"][i][3:])
        assert rles == [r["segmentation"] for r in ref["masks"]]
        assert out["num_tokens"][i] == len(ref["masks"])
        assert doc["directsam"]["threshold"] == threshold
        assert doc["directsam"]["checkpoint_sha"] == stage.predictor.checkpoint_sha
        assert out["file_name"][i] == f"{batch['image_id'][i]}.png"
