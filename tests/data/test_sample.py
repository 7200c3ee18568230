"""make_sample: layouts, schema, determinism (byte-identical reruns), and the CLI command."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from directsam.cli.sample import register
from directsam.data.decode import decode_image, decode_label_map
from directsam.data.rle import rle_area, rle_bbox_xywh, rle_to_mask
from directsam.data.sa1b import parse_sa1b_annotation
from directsam.data.sample import make_sample, make_scene


def digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_sa1b_layout(sample_root):
    assert sorted(p.name for p in sample_root.iterdir()) == ["sa_000000", "sa_000001", "tars"]
    assert sorted(p.name for p in (sample_root / "tars").iterdir()) == [
        "sa_000000.tar",
        "sa_000001.tar",
    ]
    for shard in ("sa_000000", "sa_000001"):
        folder = sorted(p.name for p in (sample_root / shard).iterdir())
        with tarfile.open(sample_root / "tars" / f"{shard}.tar") as tar:
            members = tar.getmembers()
            names = [m.name for m in members]
            assert names == folder  # same files, jpg/json pairs, in name order per image
            assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 and m.isfile() for m in members)
            for m in members:
                assert tar.extractfile(m).read() == (sample_root / shard / m.name).read_bytes()
        stems = [n.rsplit(".", 1)[0] for n in folder]
        assert all(stems.count(s) == 2 for s in stems)
    first = sorted((sample_root / "sa_000000").iterdir())
    assert [p.name for p in first] == [
        f"sa_{n}.{ext}" for n in (1, 2, 3, 4) for ext in ("jpg", "json")
    ]


def test_sa1b_json_schema_and_rle_sizes(sample_root):
    for path in sorted(sample_root.glob("sa_*/*.json")):
        doc = json.loads(path.read_bytes())
        image = decode_image((path.with_suffix(".jpg")).read_bytes(), path.name)
        h, w = image.shape[:2]
        assert (h, w) == (192, 256)
        assert doc["image"] == {
            "image_id": int(path.stem[3:]),
            "width": w,
            "height": h,
            "file_name": f"{path.stem}.jpg",
        }
        anns = doc["annotations"]
        assert 15 <= len(anns) <= 80
        assert len({a["id"] for a in anns}) == len(anns)
        coverage = np.zeros((h, w), dtype=np.int32)
        for a in anns:
            assert set(a) == {
                "id",
                "segmentation",
                "bbox",
                "area",
                "predicted_iou",
                "stability_score",
                "crop_box",
                "point_coords",
            }
            rle = a["segmentation"]
            assert rle["size"] == [h, w] and isinstance(rle["counts"], str)
            assert a["area"] == rle_area(rle) >= 10
            assert a["bbox"] == rle_bbox_xywh(rle)
            assert 0.85 <= a["predicted_iou"] <= 1 and 0.9 <= a["stability_score"] <= 1
            m = rle_to_mask(rle, (h, w))
            x, y = a["point_coords"][0]
            assert m[int(y), int(x)]  # the prompt point lies in its mask
            coverage += m
        assert (coverage >= 2).any()  # wholes and parts overlap, like SA-1B
        parse_sa1b_annotation(path.read_bytes(), path.name)


def test_scene_contents():
    scene = make_scene(np.random.default_rng([0, 0]), 64, 96)
    assert scene.image.shape == (64, 96, 3) and scene.image.dtype == np.uint8
    assert set(scene.kinds) <= {"region", "object", "part"} and "region" in scene.kinds
    assert len(scene.masks) == len(scene.kinds)
    assert scene.label_map.shape == (64, 96) and scene.label_map.max() <= len(scene.masks)
    # Every region/object pixel is covered by some mask; parts lie within their scene.
    union = np.logical_or.reduce(scene.masks)
    assert (union == (scene.label_map > 0)).all()
    assert scene.image.std() > 10  # textured, not flat


def test_deterministic_and_seed_dependent(tmp_path):
    a = make_sample(tmp_path / "a", num_images=3, seed=5, kind="sa1b", images_per_tar=2)
    b = make_sample(tmp_path / "b", num_images=3, seed=5, kind="sa1b", images_per_tar=2)
    c = make_sample(tmp_path / "c", num_images=3, seed=6, kind="sa1b", images_per_tar=2)
    assert digest(a) == digest(b)
    assert digest(a) != digest(c)
    # Image i does not depend on how many images are made.
    d = make_sample(tmp_path / "d", num_images=1, seed=5, kind="sa1b")
    assert (d / "sa_000000" / "sa_1.jpg").read_bytes() == (
        a / "sa_000000" / "sa_1.jpg"
    ).read_bytes()


def test_first_number_shifts_ids_not_images(tmp_path):
    a = make_sample(tmp_path / "a", num_images=2, seed=5, kind="sa1b")
    b = make_sample(tmp_path / "b", num_images=2, seed=5, kind="sa1b", first_number=101)
    assert sorted(p.name for p in (b / "sa_000000").iterdir()) == [
        "sa_101.jpg", "sa_101.json", "sa_102.jpg", "sa_102.json"
    ]  # fmt: skip
    for n in (1, 2):
        assert (b / "sa_000000" / f"sa_{100 + n}.jpg").read_bytes() == (
            a / "sa_000000" / f"sa_{n}.jpg"
        ).read_bytes()
        info, _ = parse_sa1b_annotation((b / "sa_000000" / f"sa_{100 + n}.json").read_bytes())
        assert info["file_name"] == f"sa_{100 + n}.jpg"
    with pytest.raises(ValueError, match="first_number"):
        make_sample(tmp_path / "c", first_number=0)


@pytest.mark.parametrize("kind", ["labelmap", "coco"])
def test_other_kinds_deterministic(tmp_path, kind):
    a = make_sample(tmp_path / "a", num_images=2, seed=1, kind=kind, height=40, width=56)
    b = make_sample(tmp_path / "b", num_images=2, seed=1, kind=kind, height=40, width=56)
    assert digest(a) == digest(b)


def test_labelmap_layout(tmp_path):
    root = make_sample(tmp_path, num_images=2, seed=0, kind="labelmap", height=48, width=64)
    assert sorted(p.name for p in (root / "images").iterdir()) == [
        "img_000001.jpg",
        "img_000002.jpg",
    ]
    modes = []
    for n in (1, 2):
        data = (root / "labels" / f"img_{n:06d}.png").read_bytes()
        modes.append(Image.open(io.BytesIO(data)).mode)
        labels = decode_label_map(data, "x", "single_channel")
        scene = make_scene(np.random.default_rng([0, n - 1]), 48, 64)
        np.testing.assert_array_equal(labels, scene.label_map)
    assert modes[0] == "L" and modes[1].startswith("I;16")


def test_coco_layout(tmp_path):
    root = make_sample(tmp_path, num_images=2, seed=0, kind="coco", height=48, width=64)
    doc = json.loads((root / "annotations.json").read_text())
    assert [im["file_name"] for im in doc["images"]] == ["000000000001.jpg", "000000000002.jpg"]
    assert all((root / "images" / im["file_name"]).exists() for im in doc["images"])
    assert {c["name"] for c in doc["categories"]} == {"region", "object", "part"}
    ids = [a["id"] for a in doc["annotations"]]
    assert len(set(ids)) == len(ids)
    assert {a["iscrowd"] for a in doc["annotations"]} == {0, 1}


def test_validation():
    with pytest.raises(ValueError, match="kind"):
        make_sample("/nonexistent", kind="voc")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_images"):
        make_sample("/nonexistent", num_images=0)


def test_cli_command(tmp_path, capsys):
    from directsam.config import ConfigError

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["make-sample", "--output", str(tmp_path / "s"), "--num-images", "2", "--seed", "3",
         "--kind", "sa1b", "--height", "32", "--width", "40", "--images-per-tar", "1"]
    )  # fmt: skip
    assert args.func(args) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "s")
    assert sorted(p.name for p in (tmp_path / "s" / "tars").iterdir()) == [
        "sa_000000.tar",
        "sa_000001.tar",
    ]
    bad = parser.parse_args(["make-sample", "--output", str(tmp_path / "t"), "--num-images", "0"])
    with pytest.raises(ConfigError, match="--num-images"):
        bad.func(bad)
