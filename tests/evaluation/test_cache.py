"""Probability cache, scoring and panels without Ray: quantisation, keys, atomic commit, the
predictor stage on a plain dict batch, and score_cache against directsam.metrics directly."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pyarrow.parquet as pq
import pytest

from directsam import schema
from directsam.data.rle import mask_to_rle
from directsam.evaluation import cache as cache_mod
from directsam.evaluation.evaluate import CachePredictor, score_cache, score_images
from directsam.metrics import aggregate, boundary_prf, effective_contour_recall


def test_quantize_round_trip_within_half_a_level():
    p = np.linspace(0.0, 1.0, 10001, dtype=np.float32)
    q = cache_mod.quantize_probs(p)
    assert q.dtype == np.uint8 and q[0] == 0 and q[-1] == 255
    assert np.abs(cache_mod.dequantize_probs(q) - p).max() <= 0.5 / 255 + 1e-7
    # round(p * 255), out-of-range values clipped
    assert cache_mod.quantize_probs(np.array([0.1, 0.5, -1.0, 2.0])).tolist() == [26, 128, 0, 255]


@pytest.mark.parametrize("threshold", [0.1, 0.2, 0.3, 0.4, 0.5, 51 / 255, 0.999, 1.0])
def test_threshold_lut_equals_float_definition(threshold):
    q = np.arange(256, dtype=np.uint8).reshape(16, 16)
    expected = (q.astype(np.float64) / 255.0) >= threshold
    np.testing.assert_array_equal(cache_mod.quantized_to_boundary(q, threshold), expected)


def _spec(**kw):
    base = dict(
        checkpoint_sha="scratch:tiny:0", dataset="ADE20k", source="labelmap", input="/d/ade",
        split="val", mode="single_channel", annotations=None, labels=None, resolution=1024,
        thickness=2, num_samples=100, seed=None, dtype="auto", device_kind="cpu",
    )  # fmt: skip
    base.update(kw)
    return cache_mod.CacheSpec(**base)


def test_cache_key_is_stable_and_covers_every_field():
    spec = _spec()
    assert spec.key() == _spec().key()
    assert spec.key().startswith("ADE20k-1024px-")
    changed = [
        replace(spec, checkpoint_sha="abc"), replace(spec, resolution=512),
        replace(spec, thickness=3), replace(spec, num_samples=None), replace(spec, seed=1),
        replace(spec, input="/d/other"), replace(spec, dtype="bf16"), replace(spec, device_kind="gpu"),
    ]  # fmt: skip
    assert len({spec.key(), *(s.key() for s in changed)}) == len(changed) + 1
    assert cache_mod.cache_location("s3://b/c/", spec) == f"s3://b/c/{spec.key()}"


def _write_rows(staging, rows):
    import pyarrow as pa

    table = pa.Table.from_pylist(rows, schema=cache_mod.cache_arrow_schema())
    pq.write_table(table, f"{staging}/part-0.parquet")


def _row(image_id, q, gt, error=None):
    return {
        schema.IMAGE_ID: image_id, schema.DATASET: "synthetic", schema.SOURCE_URI: f"/x/{image_id}.jpg",
        schema.HEIGHT: 10, schema.WIDTH: 20, schema.RESOLUTION: q.shape[0] if q is not None else 32,
        cache_mod.PROBS_U8: None if q is None else q.tobytes(),
        cache_mod.GT_BOUNDARY: None if gt is None else mask_to_rle(gt), schema.ERROR: error,
    }  # fmt: skip


def _synthetic_cache(tmp_path, n=5, size=48):
    """A committed cache of random smooth probability maps and blob-boundary GTs."""
    import cv2

    rng = np.random.default_rng(0)
    location = str(tmp_path / "cache" / _spec(resolution=size).key())
    staging = cache_mod.staging_location(location)
    cache_mod.prepare_staging(staging)
    rows, truth = [], {}
    for i in range(n):
        probs = cv2.GaussianBlur(rng.random((size, size)).astype(np.float32), (0, 0), 2.0)
        probs = (probs - probs.min()) / (probs.max() - probs.min())
        q = cache_mod.quantize_probs(probs)
        labels = (rng.random((6, 6)) * 4).astype(np.uint8)
        labels = cv2.resize(labels, (size, size), interpolation=cv2.INTER_NEAREST)
        gt = cv2.morphologyEx(labels, cv2.MORPH_GRADIENT, np.ones((2, 2), np.uint8)) > 0
        truth[f"img{i}"] = (q, gt)
        rows.append(_row(f"img{i}", q, gt))
    rows.append(_row("img_empty_gt", truth["img0"][0], np.zeros((size, size), bool)))
    rows.append(_row("img_no_gt", truth["img0"][0], None))
    rows.append(_row("img_failed", None, None, "image_decode: /x/img_failed.jpg: truncated"))
    _write_rows(staging, rows[::-1])  # storage order must not matter
    cache_mod.commit_cache(staging, location, {"key": "test", "num_rows": len(rows)})
    return location, truth


def test_commit_is_atomic_and_first_commit_wins(tmp_path):
    location = str(tmp_path / "k")
    assert cache_mod.read_manifest(location) is None
    first = cache_mod.staging_location(location)
    cache_mod.prepare_staging(first)
    assert not cache_mod.is_complete(location) and not (tmp_path / "k").exists()
    _write_rows(first, [_row("a", np.zeros((4, 4), np.uint8), None)])
    kept = cache_mod.commit_cache(first, location, {"build": 1})
    assert cache_mod.read_manifest(location)["build"] == 1 == kept["build"]
    second = cache_mod.staging_location(location)
    cache_mod.prepare_staging(second)
    kept = cache_mod.commit_cache(second, location, {"build": 2})
    assert kept["build"] == 1 and cache_mod.read_manifest(location)["build"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k"]  # staging folders gone
    assert json.loads((tmp_path / "k" / cache_mod.SUCCESS_FILE).read_text())["build"] == 1


def test_score_cache_equals_metrics_computed_directly(tmp_path):
    location, truth = _synthetic_cache(tmp_path)
    for threshold, tolerance in [(0.3, 5), (0.5, 3), (0.7, 5)]:
        got = score_cache(location, threshold, tolerance)
        ids = sorted(truth)
        preds = {i: cache_mod.dequantize_probs(truth[i][0]) >= threshold for i in ids}
        ecr = aggregate([effective_contour_recall(truth[i][1], preds[i], tolerance) for i in ids])
        prf = np.array([boundary_prf(truth[i][1], preds[i], tolerance) for i in ids])
        assert got["mean_recall"] == ecr["mean_recall"]
        assert got["mean_num_tokens"] == ecr["mean_num_tokens"]
        assert got["num_images"] == ecr["num_images"] == 5
        # empty GT after the band and missing GT are skipped; the failed row is counted apart
        assert got["num_skipped"] == 2 and got["num_failed"] == 1
        assert got["mean_precision"] == float(np.mean(prf[:, 0]))
        assert got["mean_boundary_recall"] == float(np.mean(prf[:, 1]))
        assert got["mean_f1"] == float(np.mean(prf[:, 2]))
    statuses = {r["image_id"]: r["status"] for r in score_images(location, 0.5, 5)}
    assert statuses["img_failed"] == "failed" and statuses["img_no_gt"] == "skipped"
    assert statuses["img_empty_gt"] == "skipped" and statuses["img3"] == "scored"


def test_iter_cache_requires_the_marker(tmp_path):
    with pytest.raises(FileNotFoundError, match="_SUCCESS.json"):
        list(cache_mod.iter_cache(str(tmp_path / "missing")))


def test_cache_predictor_on_a_plain_batch():
    """The actor class works without Ray: good rows get probs + GT RLE, failed rows stay failed."""
    res = 64
    rng = np.random.default_rng(1)
    images = rng.integers(0, 255, (3, res, res, 3), dtype=np.uint8)
    targets = np.zeros((3, res, res), np.uint8)
    targets[:, 20, :] = 1
    batch = {
        schema.IMAGE_ID: np.array(["a", "b", "c"], dtype=object),
        schema.DATASET: np.array(["d"] * 3, dtype=object),
        schema.SOURCE_URI: np.array(["/a", "/b", "/c"], dtype=object),
        schema.HEIGHT: np.array([10, 10, 0], np.int32), schema.WIDTH: np.array([12, 12, 0], np.int32),
        "image": images, "target": targets, "has_target": np.array([True, False, False]),
        schema.ERROR: np.array([np.float32("nan"), None, "image_decode: /c: bad"], dtype=object),
    }  # fmt: skip
    predictor = CachePredictor("scratch:tiny", resolution=res, device="cpu", dtype="fp32")
    table = predictor(batch)
    assert table.schema == cache_mod.cache_arrow_schema()
    rows = table.to_pylist()
    assert [r[schema.ERROR] for r in rows[:2]] == [None, None]
    assert rows[2][schema.ERROR] == "image_decode: /c: bad" and rows[2][cache_mod.PROBS_U8] is None
    direct = cache_mod.quantize_probs(predictor.predictor.predict(list(images[:2]), out_size=res))
    for j in range(2):
        q = np.frombuffer(rows[j][cache_mod.PROBS_U8], np.uint8).reshape(res, res)
        assert np.abs(q.astype(int) - direct[j].astype(int)).max() <= 1  # batch-size float noise
    from directsam.data.rle import rle_to_mask

    np.testing.assert_array_equal(
        rle_to_mask(rows[0][cache_mod.GT_BOUNDARY]), targets[0].astype(bool)
    )
    assert rows[1][cache_mod.GT_BOUNDARY] is None  # no annotation -> no GT


def test_panel_maps_show_the_metric(tmp_path):
    """The panel's token count and matched fraction are the image's metric values."""
    from directsam.evaluation.panels import panel_maps, render_panel, write_panels

    location, truth = _synthetic_cache(tmp_path)
    for q, gt in truth.values():
        for threshold in (0.3, 0.6):
            maps = panel_maps(gt, q, threshold, 5)
            tokens, recall = effective_contour_recall(
                gt, cache_mod.dequantize_probs(q) >= threshold, 5
            )
            assert maps["num_tokens"] == tokens
            assert maps["recall"] == recall  # exact: the panel draws the metric's own maps
            assert not (maps["matched"] & maps["missing"]).any()
    fig = render_panel(None, maps, "x")
    assert len(fig.axes) == 5
    paths = write_panels(location, tmp_path / "panels", 0.5, 5, num_images=3)
    # first 3 ids in sorted order: img0, img1, img2 (img_* sort after the digits)
    assert [p.name for p in paths] == ["img0.png", "img1.png", "img2.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)
