"""SA-1B and COCO-JSON annotation parsing: good files from the sample, and every error path."""

from __future__ import annotations

import json

import numpy as np
import pytest

from directsam.data.coco import (
    coco_annotations_to_rles,
    coco_record,
    parse_coco_json,
    parse_coco_record,
)
from directsam.data.rle import mask_to_rle, rle_to_mask
from directsam.data.sa1b import parse_sa1b_annotation, sa1b_image_id
from directsam.data.sample import make_sample
from directsam.schema import ANNOTATION_INVALID, RLE_SIZE_MISMATCH, InputError


def sa1b_doc(h: int = 4, w: int = 6) -> dict:
    rle = mask_to_rle(np.eye(h, w, dtype=bool))
    return {
        "image": {"image_id": 223750, "width": w, "height": h, "file_name": "sa_223750.jpg"},
        "annotations": [{"id": 1, "segmentation": rle, "bbox": [0, 0, 4, 4], "area": 4}],
    }


def test_parse_sa1b_minimal():
    info, rles = parse_sa1b_annotation(json.dumps(sa1b_doc()).encode(), "sa_223750.json")
    assert info == {"image_id": "sa_223750", "width": 6, "height": 4, "file_name": "sa_223750.jpg"}
    assert len(rles) == 1 and rles[0]["size"] == [4, 6]
    np.testing.assert_array_equal(rle_to_mask(rles[0], (4, 6)), np.eye(4, 6, dtype=bool))


def test_parse_sa1b_sample_files(sample_root):
    files = sorted(sample_root.glob("sa_*/*.json"))
    assert len(files) == 8
    for f in files:
        info, rles = parse_sa1b_annotation(f.read_bytes(), f.name)
        assert info["image_id"] == f.stem and info["file_name"] == f"{f.stem}.jpg"
        assert 15 <= len(rles) <= 80
        assert all(r["size"] == [info["height"], info["width"]] for r in rles)


def _broken(mutate) -> bytes:
    doc = sa1b_doc()
    mutate(doc)
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    "data, code, why",
    [
        (b"{not json", ANNOTATION_INVALID, "invalid JSON"),
        (b"\xff\xfe", ANNOTATION_INVALID, "invalid JSON"),
        (b"[1, 2]", ANNOTATION_INVALID, "top level"),
        (_broken(lambda d: d.pop("image")), ANNOTATION_INVALID, "missing key"),
        (_broken(lambda d: d.pop("annotations")), ANNOTATION_INVALID, "missing key"),
        (_broken(lambda d: d["image"].pop("width")), ANNOTATION_INVALID, "missing ['width']"),
        (_broken(lambda d: d["image"].update(height="4")), ANNOTATION_INVALID, "positive ints"),
        (_broken(lambda d: d["image"].update(file_name=None, image_id=None)), ANNOTATION_INVALID, "neither"),
        (_broken(lambda d: d.update(annotations={})), ANNOTATION_INVALID, "must be a list"),
        (_broken(lambda d: d["annotations"][0].pop("segmentation")), ANNOTATION_INVALID, "annotation 0"),
        (_broken(lambda d: d["annotations"][0]["segmentation"].update(counts=[1, 2])), ANNOTATION_INVALID, "compressed"),
        (_broken(lambda d: d["annotations"][0]["segmentation"].update(size=[4])), ANNOTATION_INVALID, "[h, w]"),
        (_broken(lambda d: d["annotations"][0]["segmentation"].update(size=[6, 4])), RLE_SIZE_MISMATCH, "[6, 4] != image size [4, 6]"),
    ],
)  # fmt: skip
def test_parse_sa1b_errors(data, code, why):
    with pytest.raises(InputError) as info:
        parse_sa1b_annotation(data, "sa_1.json")
    assert info.value.code == code
    assert why in str(info.value) and "sa_1.json" in str(info.value)


def test_image_id_from_int_when_no_file_name():
    doc = sa1b_doc()
    del doc["image"]["file_name"]
    info, _ = parse_sa1b_annotation(json.dumps(doc), "x")
    assert info["image_id"] == "sa_223750" and info["file_name"] == "sa_223750.jpg"


def test_other_file_names_keep_their_stem():
    doc = sa1b_doc()
    doc["image"]["file_name"] = "frames/cat_01.png"
    info, _ = parse_sa1b_annotation(json.dumps(doc), "x")
    assert info["image_id"] == "cat_01" and info["file_name"] == "frames/cat_01.png"


@pytest.mark.parametrize(
    "name", ["sa_223750.jpg", "sa_223750.json", "sa_223750", "data/sa_000020/sa_223750.jpg", "sa_000020/sa_223750", "C:\\x\\sa_223750.jpg"]
)  # fmt: skip
def test_sa1b_image_id(name):
    assert sa1b_image_id(name) == "sa_223750"


@pytest.mark.parametrize("name", ["cat.jpg", "sa_.jpg", "sa_12a.jpg", ""])
def test_sa1b_image_id_rejects(name):
    with pytest.raises(InputError, match="not an SA-1B file name"):
        sa1b_image_id(name)


# --- COCO ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory):
    return make_sample(tmp_path_factory.mktemp("coco"), num_images=3, seed=1, kind="coco")


def test_coco_sample_parses_to_rles(coco_root):
    images, by_image = parse_coco_json((coco_root / "annotations.json").read_bytes(), "ann.json")
    assert [im["id"] for im in images] == [1, 2, 3]
    kinds = set()
    for image in images:
        anns = by_image[image["id"]]
        for ann in anns:
            seg = ann["segmentation"]
            kinds.add("polygon" if isinstance(seg, list) else type(seg["counts"]).__name__)
        info, rles = parse_coco_record(coco_record(image, anns), image["file_name"])
        assert info == {
            "image_id": str(image["id"]),
            "width": 256,
            "height": 192,
            "file_name": image["file_name"],
        }
        assert len(rles) == len(anns)
        masks = [rle_to_mask(r, (192, 256)) for r in rles]
        # Polygons rasterise close to the stored areas (pycocotools conventions).
        for m, ann in zip(masks, anns):
            assert abs(int(m.sum()) - ann["area"]) <= 0.5 * ann["area"] + 40
        crowd = [a for a in anns if a["iscrowd"]]
        assert len(crowd) == 1 and isinstance(crowd[0]["segmentation"]["counts"], list)
        no_crowd = coco_annotations_to_rles(anns, 192, 256, include_crowd=False)
        assert len(no_crowd) == len(anns) - 1
    assert kinds == {"polygon", "str", "list"}


def test_coco_record_needs_size_or_image_hw():
    image = {"id": "a/b", "file_name": "a/b.jpg"}
    rle = mask_to_rle(np.ones((3, 5), dtype=bool))
    record = coco_record(image, [{"id": 1, "image_id": "a/b", "segmentation": rle}])
    with pytest.raises(InputError, match="no height/width"):
        parse_coco_record(record, "b.jpg")
    info, rles = parse_coco_record(record, "b.jpg", image_hw=(3, 5))
    assert info["image_id"] == "a/b" and info["height"] == 3 and len(rles) == 1
    sized = coco_record({**image, "height": 3, "width": 5}, [])
    with pytest.raises(InputError) as err:
        parse_coco_record(sized, "b.jpg", image_hw=(5, 3))
    assert err.value.code == RLE_SIZE_MISMATCH


@pytest.mark.parametrize(
    "doc, why",
    [
        (b"nope", "invalid JSON"),
        ({"annotations": []}, "'images' list"),
        ({"images": [{"id": 1}]}, "no 'file_name'"),
        ({"images": [{"id": 1, "file_name": "a"}, {"id": 1, "file_name": "b"}]}, "duplicate"),
        ({"images": [{"id": 1, "file_name": "a", "height": 0, "width": 2}]}, "positive int"),
        (
            {"images": [{"id": 1, "file_name": "a"}], "annotations": [{"image_id": 2}]},
            "unknown image",
        ),
        ({"images": [], "annotations": [{"id": 3}]}, "no image_id"),
    ],
)
def test_coco_json_errors(doc, why):
    with pytest.raises(InputError) as info:
        parse_coco_json(doc, "instances.json")
    assert info.value.code == ANNOTATION_INVALID and why in str(info.value)


def test_coco_annotation_errors_name_image_and_annotation():
    with pytest.raises(InputError) as info:
        coco_annotations_to_rles([{"id": 42, "segmentation": [[1, 2, 3]]}], 8, 8, "000001.jpg")
    assert "000001.jpg annotation 42" in str(info.value)
    with pytest.raises(InputError, match="no segmentation"):
        coco_annotations_to_rles([{"id": 43, "bbox": [0, 0, 1, 1]}], 8, 8, "x")
