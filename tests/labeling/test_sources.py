"""Listing and reading of every source type (driver side, no Ray)."""

from __future__ import annotations

import json
import tarfile

import numpy as np
import pytest

from directsam.data.sample import make_sample
from directsam.data.sources import SourceSpec, list_source, read_items, read_uri
from directsam.data.sources.fs import tar_index
from directsam.schema import ERROR, IMAGE_BYTES, InputError
from tests.labeling.corrupt import code_of, corrupt_labelmap


@pytest.fixture(scope="module")
def sa1b_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("sa1b")
    make_sample(root, num_images=12, seed=1, kind="sa1b", height=40, width=56, images_per_tar=5)
    return root


def _read(items):
    rows = [it.to_row() for it in items]
    batch = {k: np.array([r[k] for r in rows], dtype=object) for k in rows[0]}
    return read_items(batch)


def test_sa1b_layouts_list_the_same_images(sa1b_root):
    folders = list_source(SourceSpec("sa1b", str(sa1b_root)))
    one = list_source(SourceSpec("sa1b", str(sa1b_root / "sa_000001")))
    tars = list_source(SourceSpec("sa1b", str(sa1b_root / "tars")))
    single_tar = list_source(SourceSpec("sa1b", str(sa1b_root / "tars" / "sa_000000.tar")))
    ids = sorted(f"sa_{n}" for n in range(1, 13))
    assert [i.image_id for i in folders] == ids == [i.image_id for i in tars]
    assert [i.image_id for i in one] == sorted(f"sa_{n}" for n in range(6, 11))
    assert [i.image_id for i in single_tar] == sorted(f"sa_{n}" for n in range(1, 6))
    assert tars[0].source_uri == f"{sa1b_root}/tars/sa_000000.tar::sa_1.jpg"
    assert folders[0].source_uri == f"{sa1b_root}/sa_000000/sa_1.jpg"
    assert {i.dataset for i in folders} == {sa1b_root.name}
    # Tar members read by offset equal the extracted files, image and JSON alike.
    a, b = _read(folders), _read(tars)
    assert list(a[IMAGE_BYTES]) == list(b[IMAGE_BYTES])
    assert list(a["annotation"]) == list(b["annotation"])
    assert all(e is None for e in b[ERROR])


def test_read_uri_tar_member_without_offsets_and_missing(sa1b_root):
    tar = sa1b_root / "tars" / "sa_000000.tar"
    assert read_uri(f"{tar}::sa_2.json") == (sa1b_root / "sa_000000" / "sa_2.json").read_bytes()
    assert set(tar_index(str(tar))) == {f"sa_{n}.{e}" for n in range(1, 6) for e in ("jpg", "json")}
    with pytest.raises(InputError, match="read_failed: .*no member"):
        read_uri(f"{tar}::sa_99.jpg")
    with pytest.raises(InputError, match="read_failed"):
        read_uri(str(sa1b_root / "nope.jpg"))


def test_truncated_tar_keeps_listed_members_and_fails_the_cut_one(tmp_path, sa1b_root):
    src = (sa1b_root / "tars" / "sa_000000.tar").read_bytes()
    with tarfile.open(sa1b_root / "tars" / "sa_000000.tar") as tf:
        cut_member = tf.getmember("sa_2.json")
    cut = tmp_path / "tars" / "t.tar"
    cut.parent.mkdir()
    cut.write_bytes(src[: cut_member.offset_data + 10])  # cut inside sa_2.json's data
    (tmp_path / "tars" / "bad.tar").write_bytes(b"definitely not a tar" * 40)
    items = list_source(SourceSpec("sa1b", str(tmp_path / "tars")))
    errors = dict(zip([i.image_id for i in items], _read(items)[ERROR], strict=True))
    # Members past the cut are unknowable: the cut image fails naming the damage, and a tar
    # that is not a tar at all is one failed row named after the tar and the byte.
    assert {k: code_of(e) for k, e in errors.items()} == {
        "bad@0": "read_failed",
        "sa_1": None,
        "sa_2": "read_failed",
    }
    assert "sa_2.json is cut short (10 of" in errors["sa_2"]
    assert "bad.tar: corrupt tar header" in errors["bad@0"]


def test_coco_listing_records_and_lvis_coco_url(tmp_path):
    root = make_sample(tmp_path / "c", num_images=3, seed=2, kind="coco", height=40, width=56)
    items = list_source(SourceSpec("coco", str(root)))
    assert [i.image_id for i in items] == ["1", "2", "3"]
    doc = json.loads((root / "annotations.json").read_text())
    rec = json.loads(items[1].annotation)
    assert rec["image"]["id"] == 2
    assert rec["annotations"] == [a for a in doc["annotations"] if a["image_id"] == 2]
    assert items[0].source_uri == f"{root}/images/{1:012d}.jpg"
    # LVIS: no file_name, only coco_url.
    for img in doc["images"]:
        url = f"http://images.cocodataset.org/train2017/{img.pop('file_name')}"
        img["coco_url"] = url
    (tmp_path / "lvis.json").write_text(json.dumps(doc))
    lvis = list_source(
        SourceSpec("coco", str(root / "images"), annotations=str(tmp_path / "lvis.json"))
    )
    assert [i.source_uri for i in lvis] == [i.source_uri for i in items]
    assert all(e is None for e in _read(lvis)[ERROR])
    with pytest.raises(ValueError, match="--annotations"):
        list_source(SourceSpec("coco", str(root / "images")))


def test_labelmap_pairs_by_stem_and_flags_missing_labels(tmp_path):
    expected = corrupt_labelmap(tmp_path / "lm")
    items = list_source(SourceSpec("labelmap", str(tmp_path / "lm"), mode="force_binary"))
    assert [i.image_id for i in items] == sorted(expected)
    assert {i.label_mode for i in items} == {"force_binary"}
    assert [code_of(i.error) for i in items] == [None, "annotation_missing", None, None, None]
    explicit = list_source(
        SourceSpec(
            "labelmap", str(tmp_path / "lm" / "images"), labels=str(tmp_path / "lm" / "labels")
        )
    )
    assert [i.annotation_uri for i in explicit] == [i.annotation_uri for i in items]


def test_images_ids_are_relative_paths_and_unique(tmp_path):
    root = tmp_path / "imgs"
    (root / "sub").mkdir(parents=True)
    for rel in ("a.jpg", "a.png", "sub/b.JPG", "notes.txt", ".hidden.jpg"):
        (root / rel).write_bytes(b"x")
    items = list_source(SourceSpec("images", str(root)))
    assert [i.image_id for i in items] == ["a.jpg", "a.png", "sub/b"]
    assert {i.annotation_kind for i in items} == {"none"}


def test_split_and_subsets_follow_sorted_ids(sa1b_root):
    full = [i.image_id for i in list_source(SourceSpec("sa1b", str(sa1b_root)))]
    train = [i.image_id for i in list_source(SourceSpec("sa1b", str(sa1b_root), split="train"))]
    val = [i.image_id for i in list_source(SourceSpec("sa1b", str(sa1b_root), split="val"))]
    assert val == full[-1:] and train == full[:-1]  # ceil(1% of 12) = 1
    assert [
        i.image_id for i in list_source(SourceSpec("sa1b", str(sa1b_root), num_samples=3))
    ] == full[:3]
    a = [i.image_id for i in list_source(SourceSpec("sa1b", str(sa1b_root), num_samples=4, seed=7))]
    b = [i.image_id for i in list_source(SourceSpec("sa1b", str(sa1b_root), num_samples=4, seed=7))]
    assert a == b == sorted(a) and len(set(a)) == 4 and set(a) <= set(full)


def test_bad_arguments_name_their_flag(tmp_path):
    with pytest.raises(ValueError, match="--source"):
        list_source(SourceSpec("tiff", str(tmp_path)))
    with pytest.raises(ValueError, match="--input"):
        list_source(SourceSpec("images", str(tmp_path / "missing")))
    with pytest.raises(ValueError, match="--split"):
        list_source(SourceSpec("images", str(tmp_path), split="test"))
