"""Bad-input catalogue: every case has its documented outcome, at the primitive and through Ray.

Primitives raise ``InputError(code, "<file>: <why>")``; the labeling pipeline turns the same
errors into failed rows (``error = "<code>: <detail>"``, label columns null) and writes one row
per input, so ``inputs == good + failed`` and each failed row has the expected code.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from directsam.data.decode import decode_image, decode_label_map
from directsam.data.rle import mask_to_rle, rle_to_mask, segmentation_to_rle
from directsam.data.sa1b import parse_sa1b_annotation
from directsam.data.sample import make_sample
from directsam.data.targets import annotation_to_boundary
from directsam.schema import InputError
from tests.reliability import catalogue as cat
from tests.reliability.helpers import code_of, label_config, read_rows

RES = 64


def _raises(code: str, fn, *args, **kwargs) -> str:
    with pytest.raises(InputError) as info:
        fn(*args, **kwargs)
    assert info.value.code == code, str(info.value)
    return str(info.value)


# ------------------------------------------------------------------------- images


@pytest.mark.parametrize(
    "data, code",
    [
        (b"", "image_decode"),
        (b"%PDF-1.4 not an image", "image_decode"),
        (cat.encode(cat.rgb(), "JPEG")[:300], "image_decode"),  # truncated JPEG
        (cat.huge_png(30000, 30000), "image_too_large"),  # Pillow's bomb guard on the header
    ],
    ids=["zero-byte", "non-image", "truncated-jpeg", "bomb-header"],
)
def test_broken_images_name_the_file(data, code):
    message = _raises(code, decode_image, data, "shard/sa_7.jpg")
    assert message.startswith(f"{code}: shard/sa_7.jpg: ")


def test_pixel_limit_is_checked_from_the_header_before_decoding():
    message = _raises("image_too_large", decode_image, cat.huge_png(5000, 4000), "x.png", 10**7)
    assert "5000x4000 = 20000000 pixels exceeds max 10000000" in message


@pytest.mark.parametrize("maker", [cat.gray_png, cat.png16, cat.rgba_png, cat.palette_png])
def test_lossless_modes_decode_to_the_expected_rgb(maker):
    data, expected = maker()
    out = decode_image(data, "x.png")
    assert out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, expected)


def test_cmyk_jpeg_decodes_like_pillow_rgb():
    from PIL import Image

    data = cat.cmyk_jpeg()
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    want = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    np.testing.assert_array_equal(decode_image(data, "c.jpg"), want)


def test_exif_orientation_is_applied():
    from PIL import Image, ImageOps

    data = cat.exif_rotated_jpeg()
    assert Image.open(io.BytesIO(data)).size == (cat.H, cat.W)  # stored W x H (PIL: w, h)
    out = decode_image(data, "r.jpg")
    assert out.shape == (cat.H, cat.W, 3)
    want = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    np.testing.assert_array_equal(out, want)


# ------------------------------------------------------------------------- annotations


def _sa1b_doc(annotations) -> bytes:
    image = {"image_id": 3, "width": 8, "height": 6, "file_name": "sa_3.jpg"}
    return json.dumps({"image": image, "annotations": annotations}).encode()


def test_invalid_json_and_wrong_structure_name_the_file():
    msg = _raises("annotation_invalid", parse_sa1b_annotation, b'{"image": ', "dir/sa_3.json")
    assert msg.startswith("annotation_invalid: dir/sa_3.json: invalid JSON")
    _raises("annotation_invalid", parse_sa1b_annotation, b"[1, 2]", "a.json")
    _raises("annotation_invalid", parse_sa1b_annotation, b"\xff\xfe", "a.json")
    poly = [{"segmentation": [[0, 0, 4, 0, 4, 4]]}]
    _raises("annotation_invalid", parse_sa1b_annotation, _sa1b_doc(poly), "a.json")


def test_empty_annotation_list_gives_the_border_band_only():
    info, rles = parse_sa1b_annotation(_sa1b_doc([]), "a.json")
    assert rles == [] and (info["height"], info["width"]) == (6, 8)
    boundary = annotation_to_boundary(_sa1b_doc([]), "sa1b", (6, 8), 16, 3, "a.json")
    expected = np.ones((16, 16), bool)
    expected[3:-3, 3:-3] = False
    np.testing.assert_array_equal(boundary, expected)


def test_rle_size_disagreeing_with_the_image():
    rle = mask_to_rle(np.ones((6, 8), bool))
    msg = _raises("rle_size_mismatch", rle_to_mask, rle, (6, 9), "m.json")
    assert "m.json: RLE size [6, 8] != image size [6, 9]" in msg
    doc = _sa1b_doc([{"segmentation": rle}])
    _raises("rle_size_mismatch", annotation_to_boundary, doc, "sa1b", (7, 8), RES, 3, "a.json")
    # counts that do not cover size[0] * size[1] pixels are corrupt, not a size mismatch
    short = {"size": [6, 8], "counts": mask_to_rle(np.ones((6, 7), bool))["counts"]}
    assert "cover 42 pixels" in _raises("annotation_invalid", rle_to_mask, short)


def test_polygon_segmentations_rasterise_like_pycocotools():
    from pycocotools import mask as mask_utils

    polys = [[1.0, 1.0, 12.5, 1.0, 12.5, 9.0, 1.0, 9.0], [14, 2, 18, 10, 14, 10]]
    got = rle_to_mask(segmentation_to_rle(polys, 12, 20, "p"))
    want = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polys, 12, 20))).astype(bool)
    np.testing.assert_array_equal(got, want)
    assert got.sum() > 0
    assert not segmentation_to_rle([[1, 2, 3, 4]], 12, 20)["counts"] == ""  # 2 points: dropped
    assert rle_to_mask(segmentation_to_rle([[1, 2, 3, 4]], 12, 20)).sum() == 0
    _raises("annotation_invalid", segmentation_to_rle, [[1, 2, 3]], 12, 20, "p")
    _raises("annotation_invalid", segmentation_to_rle, [["a", 2, 3, 4, 5, 6]], 12, 20, "p")


def test_label_maps_of_the_wrong_size_and_garbage_label_files():
    labels = cat.encode(np.ones((10, 12), np.uint8), "PNG")
    msg = _raises(
        "label_map_size_mismatch",
        annotation_to_boundary,
        labels,
        "labelmap",
        (6, 8),
        RES,
        3,
        "l.png",
    )
    assert "l.png: label map [10, 12] != image size [6, 8]" in msg
    _raises("annotation_invalid", decode_label_map, b"not a png", "l.png")
    sixteen = cat.png16(6, 8)[0]
    assert decode_label_map(sixteen, "l16.png").max() > 255  # 16-bit labels keep their values


def test_missing_annotation_file_is_a_failed_listing_row(tmp_path):
    from directsam.data.sources import SourceSpec, list_source

    make_sample(tmp_path, num_images=3, seed=1, kind="sa1b", height=24, width=32)
    (tmp_path / "sa_000000" / "sa_2.json").unlink()
    items = {i.image_id: i for i in list_source(SourceSpec("sa1b", str(tmp_path / "sa_000000")))}
    assert items["sa_2"].error.startswith("annotation_missing: ")
    assert "sa_2.jpg" in items["sa_2"].error and items["sa_1"].error is None


# ------------------------------------------------------------------------- through Ray


@pytest.mark.ray
def test_one_labeling_run_over_the_whole_catalogue(ray_local, tmp_path):
    from directsam.labeling.pipeline import run_labeling

    folder = cat.bad_sa1b_folder(tmp_path / "in")
    cfg = label_config(folder, tmp_path / "out", RES, dataset="bad")
    summary = run_labeling(cfg, log=lambda *_: None)
    rows, seen = read_rows(summary["generation"])

    expected = cat.SA1B_EXPECTED
    failed = sum(code is not None for code in expected.values())
    assert len(seen) == len(set(seen)) == len(expected) == summary["num_inputs"]
    assert summary["num_rows"] == summary["num_good"] + summary["num_failed"] == len(expected)
    assert (summary["num_good"], summary["num_failed"]) == (len(expected) - failed, failed)
    assert {k: code_of(r["error"]) for k, r in rows.items()} == expected
    codes = {}
    for code in expected.values():
        if code:
            codes[code] = codes.get(code, 0) + 1
    assert summary["error_counts"] == dict(sorted(codes.items()))
    for image_id, row in rows.items():
        if row["error"] is None:
            assert row["pseudo_boundary"]["size"] == [RES, RES]
            assert rle_to_mask(row["human_boundary"]).shape == (RES, RES)
            assert (row["height"], row["width"]) == (cat.H, cat.W)  # EXIF row too
        else:
            assert row["pseudo_boundary"] is None and row["human_boundary"] is None
            assert cat.SA1B_NAMED.get(image_id, f"{image_id}.") in row["error"]
    # the empty annotation list gives the border band only
    border = rle_to_mask(rows["sa_16"]["human_boundary"])
    assert border[:3].all() and not border[3:-3, 3:-3].any()


@pytest.mark.ray
def test_coco_and_labelmap_catalogue_rows(ray_local, tmp_path):
    """COCO: polygons, empty annotation list, RLE size mismatch, a missing image file;
    label maps: wrong size, missing, garbage."""
    from directsam.labeling.pipeline import run_labeling

    coco = make_sample(tmp_path / "coco", num_images=4, seed=2, kind="coco", height=32, width=40)
    ann_path = coco / "annotations.json"
    doc = json.loads(ann_path.read_text())
    ids = sorted(img["id"] for img in doc["images"])
    has_polygons = {
        a["image_id"] for a in doc["annotations"] if isinstance(a["segmentation"], list)
    }
    assert set(ids) <= has_polygons
    doc["annotations"] = [a for a in doc["annotations"] if a["image_id"] != ids[1]]  # empty
    for a in doc["annotations"]:
        if a["image_id"] == ids[2] and isinstance(a["segmentation"], dict):
            a["segmentation"]["size"] = [33, 40]
    ann_path.write_text(json.dumps(doc))
    file_of = {img["id"]: img["file_name"] for img in doc["images"]}
    (coco / "images" / file_of[ids[3]]).unlink()
    summary = run_labeling(
        label_config(coco, tmp_path / "o1", RES, source="coco"), log=lambda *_: None
    )
    rows, seen = read_rows(summary["generation"])
    assert len(seen) == len(set(seen)) == 4 == summary["num_good"] + summary["num_failed"]
    got = {k: code_of(r["error"]) for k, r in rows.items()}
    assert sorted(got.values(), key=str) == sorted(
        [None, None, "rle_size_mismatch", "read_failed"], key=str
    )
    missing = [r for r in rows.values() if code_of(r["error"]) == "read_failed"][0]
    assert file_of[ids[3]] in missing["error"]

    lm = make_sample(tmp_path / "lm", num_images=4, seed=4, kind="labelmap", height=32, width=40)
    (lm / "labels" / "img_000001.png").write_bytes(cat.encode(np.ones((10, 12), np.uint8), "PNG"))
    (lm / "labels" / "img_000002.png").unlink()
    (lm / "labels" / "img_000003.png").write_bytes(b"GIF89a garbage")
    summary = run_labeling(
        label_config(lm, tmp_path / "o2", RES, source="labelmap"), log=lambda *_: None
    )
    rows, seen = read_rows(summary["generation"])
    assert len(seen) == 4 == summary["num_rows"]
    assert {k: code_of(r["error"]) for k, r in rows.items()} == {
        "img_000001": "label_map_size_mismatch",
        "img_000002": "annotation_missing",
        "img_000003": "annotation_invalid",
        "img_000004": None,  # a 16-bit label map
    }
    assert Path(rows["img_000001"]["source_uri"]).name in rows["img_000001"]["error"]
