"""decode_rows / annotation_to_boundary against plain reference computations (no Ray)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from directsam.data.boundary import label_map_to_boundary, masks_to_boundary
from directsam.data.coco import parse_coco_record
from directsam.data.decode import decode_image, decode_label_map, resize_label_map, resize_rgb
from directsam.data.rle import mask_to_rle
from directsam.data.sa1b import parse_sa1b_annotation
from directsam.data.sample import make_sample
from directsam.data.sources import SourceSpec, list_source, read_items
from directsam.data.targets import annotation_to_boundary, decode_rows, resize_boundary
from directsam.schema import InputError
from tests.labeling.corrupt import code_of, corrupt_labelmap, corrupt_sa1b

R, T = 48, 3


def _rows(items):
    rows = [it.to_row() for it in items]
    return read_items({k: np.array([r[k] for r in rows], dtype=object) for k in rows[0]})


def test_sa1b_rows_match_reference(tmp_path):
    root = make_sample(tmp_path, num_images=3, seed=5, kind="sa1b", height=40, width=56)
    batch = _rows(list_source(SourceSpec("sa1b", str(root))))
    out = decode_rows(batch, R, T)
    assert "image_bytes" not in out and "annotation" not in out
    assert out["image"].shape == (3, R, R, 3) and out["image"].dtype == np.uint8
    assert out["target"].shape == (3, R, R) and out["target"].dtype == np.uint8
    for i in range(3):
        image = decode_image(batch["image_bytes"][i])
        _, rles = parse_sa1b_annotation(batch["annotation"][i])
        np.testing.assert_array_equal(out["image"][i], resize_rgb(image, R))
        np.testing.assert_array_equal(out["target"][i], masks_to_boundary(rles, R, T))
        assert (out["height"][i], out["width"][i]) == (40, 56)
    assert out["has_target"].all() and all(e is None for e in out["error"])
    no_target = decode_rows(batch, R, None, keep_image=False)
    assert "target" not in no_target and "image" not in no_target


def test_coco_rows_match_reference(tmp_path):
    root = make_sample(tmp_path, num_images=2, seed=6, kind="coco", height=40, width=56)
    batch = _rows(list_source(SourceSpec("coco", str(root))))
    out = decode_rows(batch, R, T)
    for i in range(2):
        _, rles = parse_coco_record(batch["annotation"][i], image_hw=(40, 56))
        assert len(rles) > 0
        np.testing.assert_array_equal(out["target"][i], masks_to_boundary(rles, R, T))


@pytest.mark.parametrize("mode", ["single_channel", "force_binary", "rgb"])
def test_labelmap_modes_match_reference(tmp_path, mode):
    root = make_sample(tmp_path, num_images=2, seed=7, kind="labelmap", height=40, width=56)
    batch = _rows(list_source(SourceSpec("labelmap", str(root), mode=mode)))
    out = decode_rows(batch, R, T)
    for i in range(2):
        labels = decode_label_map(batch["annotation"][i], mode=mode)
        expected = label_map_to_boundary(resize_label_map(labels, R), T)
        np.testing.assert_array_equal(out["target"][i], expected)
    if mode == "force_binary":
        # Binary labels have far fewer edges than the finest-segment labels.
        full = decode_rows(_rows(list_source(SourceSpec("labelmap", str(root)))), R, T)
        assert out["target"].sum() < full["target"].sum()


def test_corrupt_rows_get_codes_and_zero_arrays(tmp_path):
    expected = corrupt_sa1b(tmp_path / "s")
    expected_lm = corrupt_labelmap(tmp_path / "l")
    out = decode_rows(_rows(list_source(SourceSpec("sa1b", str(tmp_path / "s")))), R, T)
    got = {i: code_of(e) for i, e in zip(out["image_id"], out["error"], strict=True)}
    assert got == expected
    bad = np.array([e is not None for e in out["error"]])
    assert not out["image"][bad].any() and not out["target"][bad].any()
    assert not out["has_target"][bad].any() and out["has_target"][~bad].all()
    out = decode_rows(_rows(list_source(SourceSpec("labelmap", str(tmp_path / "l")))), R, T)
    assert {
        i: code_of(e) for i, e in zip(out["image_id"], out["error"], strict=True)
    } == expected_lm
    # A bad annotation does not hide the image size.
    assert out["height"][0] == 48


def test_shard_kind_and_none_kind():
    mask = np.zeros((64, 64), bool)
    mask[10, :] = True
    ann = json.dumps(mask_to_rle(mask)).encode()
    np.testing.assert_array_equal(annotation_to_boundary(ann, "shard", (5, 5), 64, 9, "x"), mask)
    half = annotation_to_boundary(ann, "shard", (5, 5), 32, 9, "x")
    assert half.shape == (32, 32) and half[5].all() and half.sum() == 32
    assert annotation_to_boundary(None, "sa1b", (5, 5), 32, 9, "x") is None
    assert annotation_to_boundary(b"{}", "none", (5, 5), 32, 9, "x") is None
    with pytest.raises(InputError, match="annotation_invalid"):
        annotation_to_boundary(b"{oops", "shard", (5, 5), 32, 9, "x")


def test_resize_boundary_keeps_thin_lines():
    mask = np.zeros((90, 90), bool)
    mask[:, 44] = True  # 1-px vertical line: nearest-neighbour at 30 px could drop it
    small = resize_boundary(mask, 30)
    assert small.shape == (30, 30) and small[:, 14].all() and small.sum() == 30
    assert resize_boundary(mask, 90) is mask
    big = resize_boundary(small, 60)
    assert big.shape == (60, 60) and big[:, 28:30].all() and big.sum() == 120
