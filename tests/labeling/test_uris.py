"""``s3://``-style URIs: every source type listed and read through a pyarrow filesystem whose
paths are ``bucket/key`` (as ``S3FileSystem``'s), and shards written and re-read there (no Ray).

The bucket is pyarrow's in-memory ``_MockFileSystem`` registered for the ``s3`` scheme, so the
code under test takes exactly the object-store path (scheme -> filesystem, ``bucket/key`` paths,
ranged reads of tar members, temp-file + move writes) without a network.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow.fs as pafs
import pytest

from directsam.data.sample import make_sample
from directsam.data.sources import SourceSpec, fs, list_source, read_items
from directsam.data.sources.listing import items_of
from directsam.data.sources.shards import layout
from directsam.data.sources.shards.counts import shard_counts
from directsam.data.sources.shards.source import shard_items
from directsam.data.targets import decode_rows
from directsam.labeling.writer import (
    block_status,
    block_table,
    plan_blocks,
    rle_cell,
    write_block,
)


@pytest.fixture(scope="module")
def bucket(tmp_path_factory):
    from pyarrow._fs import _MockFileSystem

    local = tmp_path_factory.mktemp("local")
    make_sample(
        local / "sa1b", num_images=6, seed=1, kind="sa1b", height=32, width=40, images_per_tar=4
    )
    make_sample(local / "coco", num_images=3, seed=2, kind="coco", height=32, width=40)
    make_sample(local / "lm", num_images=3, seed=3, kind="labelmap", height=32, width=40)
    mock = _MockFileSystem()
    pafs.copy_files(
        str(local),
        "bucket/data",
        source_filesystem=pafs.LocalFileSystem(),
        destination_filesystem=mock,
    )
    fs.register_filesystem("s3", mock)
    yield local, mock
    fs.register_filesystem("s3", None)


def _read(items):
    rows = [it.to_row() for it in items]
    return read_items({k: np.array([r[k] for r in rows], dtype=object) for k in rows[0]})


@pytest.mark.parametrize(
    ("source", "rel", "kw"),
    [
        ("sa1b", "sa1b", {}),
        ("sa1b", "sa1b/tars", {}),
        ("sa1b", "sa1b/sa_000001", {}),
        ("coco", "coco", {}),
        ("labelmap", "lm", {"mode": "force_binary"}),
        ("images", "coco/images", {}),
    ],
)
def test_sources_read_the_same_rows_from_a_bucket(bucket, source, rel, kw):
    local, _ = bucket
    here = list_source(SourceSpec(source, str(local / rel), **kw))
    there = list_source(SourceSpec(source, f"s3://bucket/data/{rel}", **kw))
    assert [i.image_id for i in there] == [i.image_id for i in here] and len(here) >= 2
    for a, b in zip(here, there, strict=True):
        assert b.source_uri == a.source_uri.replace(str(local), "s3://bucket/data")
        assert b.dataset == a.dataset
    ra, rb = _read(here), _read(there)
    assert all(e is None for e in rb["error"])
    assert list(rb["image_bytes"]) == list(ra["image_bytes"])
    assert list(rb["annotation"]) == list(ra["annotation"])
    da, db = decode_rows(ra, 32, 3), decode_rows(rb, 32, 3)
    np.testing.assert_array_equal(db["image"], da["image"])
    np.testing.assert_array_equal(db["target"], da["target"])


def test_missing_objects_are_row_errors_and_listing_errors(bucket):
    _, mock = bucket
    mock.delete_file("bucket/data/sa1b/sa_000000/sa_2.jpg")
    items = list_source(SourceSpec("sa1b", "s3://bucket/data/sa1b/tars"))
    mock.delete_file("bucket/data/coco/images/000000000002.jpg")
    rows = _read(list_source(SourceSpec("coco", "s3://bucket/data/coco")))
    assert [e is None for e in rows["error"]] == [True, False, True]
    assert rows["error"][1].startswith("read_failed: s3://bucket/data/coco/images/000000000002")
    assert all(i.error is None for i in items)  # tar members are unaffected
    with pytest.raises(ValueError, match="--input"):
        list_source(SourceSpec("images", "s3://bucket/nothing-here"))


def test_shards_written_atomically_to_a_bucket_and_relisted(bucket):
    _, mock = bucket
    gen = "s3://bucket/out/ds/gen-x"
    ids = ["a", "b", "c"]
    (plan,) = plan_blocks(ids, 4)
    constants = {
        "resolution": 8,
        "checkpoint": "ck",
        "checkpoint_sha": "x",
        "threshold": 0.5,
        "thickness": 3,
    }
    rle = {"size": [8, 8], "counts": "0`0"}
    rows = {
        i: {
            "source_uri": f"s3://bucket/data/{i}.jpg",
            "dataset": "ds",
            "height": 8,
            "width": 8,
            "pseudo_boundary": rle_cell("0`0", 8),
            "human_boundary": rle,
            "error": None,
        }
        for i in ids
    }
    rows["b"]["error"] = "image_decode: b: broken"
    layout.write_json_atomic(
        fs.join(gen, layout.PLAN_FILE), {"dataset": "ds", "checkpoint_sha": "x", "thickness": 3}
    )
    uri = write_block(gen, block_table(plan, rows, constants), plan.key)
    assert uri == f"{gen}/part-000000.parquet" and block_status(gen, plan)
    names = [i.base_name for i in mock.get_file_info(pafs.FileSelector("bucket/out/ds/gen-x"))]
    assert sorted(names) == ["_plan.json", "part-000000.parquet"]  # no temp files left
    assert layout.find_generations("s3://bucket/out") == [gen]
    assert layout.part_files(gen) == [uri]
    counts = shard_counts([uri])
    assert (counts["num_rows"], counts["num_good"], counts["num_failed"]) == (3, 2, 1)
    items = items_of(shard_items(gen, None))  # an Arrow listing table
    assert [(i.image_id, i.source_uri, i.annotation_kind) for i in items] == [
        ("a", "s3://bucket/data/a.jpg", "shard"),
        ("b", "s3://bucket/data/b.jpg", "none"),
        ("c", "s3://bucket/data/c.jpg", "shard"),
    ]
    assert json.loads(items[0].annotation) == rle and items[1].error.startswith("image_decode")
