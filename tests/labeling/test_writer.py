"""Block plan, atomic shard writes, plan checks, merged-label logic and the registry (no Ray)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from directsam.config import ConfigError, load_config
from directsam.data.rle import mask_to_rle, rle_to_mask
from directsam.data.sources.registry import load_registry, validate_entry
from directsam.data.sources.shards import layout
from directsam.data.sources.shards.counts import shard_counts
from directsam.data.sources.shards.layout import clean_temp_files, select_generations
from directsam.data.sources.shards.merged import merge_boundaries, merge_rows
from directsam.labeling.config import LabelConfig
from directsam.labeling.writer import (
    PlanMismatchError,
    block_status,
    block_table,
    plan_blocks,
    write_block,
)

CONSTANTS = {
    "resolution": 8,
    "checkpoint": "scratch:tiny",
    "checkpoint_sha": "scratch:tiny:0",
    "threshold": 0.5,
    "thickness": 3,
}


def _row(i, error=None):
    rle = {"size": [8, 8], "counts": mask_to_rle(np.eye(8, dtype=bool))["counts"]}
    return {
        "source_uri": f"/x/{i}.jpg",
        "dataset": "d",
        "height": 10,
        "width": 12,
        "pseudo_boundary": rle,
        "human_boundary": None if i % 2 else rle,
        "error": error,
    }


def test_plan_blocks_cut_sorted_ids():
    blocks = plan_blocks([f"i{k}" for k in range(7)], 3)
    assert [b.image_ids for b in blocks] == [("i0", "i1", "i2"), ("i3", "i4", "i5"), ("i6",)]
    assert [b.key for b in blocks] == ["000000", "000001", "000002"]
    assert blocks[0].ids_sha != plan_blocks(["i0", "i1", "i3"], 3)[0].ids_sha


def test_shard_names_of_listed_blocks_and_tar_chunks():
    assert layout.part_name(42) == layout.part_name("000042") == "part-000042.parquet"
    key = layout.chunk_key("sa_000042", 3)
    assert layout.part_name(key) == "part-sa_000042-00003.parquet"
    uri = f"s3://b/out/ds/{layout.generation_name('scratch:b0:0')}/{layout.part_name(key)}"
    assert uri == "s3://b/out/ds/gen-scratch-b0-0/part-sa_000042-00003.parquet"
    assert layout.parse_chunk_key(layout.part_key(uri)) == ("sa_000042", 3)
    assert layout.part_key(layout.part_name(7)) == "000007"


def test_block_round_trip_status_and_counts(tmp_path):
    gen = str(tmp_path / "d" / "gen-x")
    block = plan_blocks(["b", "a2", "c"], 3)[0]
    rows = {"b": _row(1), "a2": _row(2), "c": _row(3, "image_decode: c: bad")}
    assert not block_status(gen, block)
    uri = write_block(gen, block_table(block, rows, CONSTANTS), block.key)
    assert uri.endswith("part-000000.parquet") and block_status(gen, block)
    table = pq.read_table(uri)
    assert table["image_id"].to_pylist() == ["b", "a2", "c"]  # plan order
    got = table.to_pylist()
    assert got[0]["human_boundary"] is None and got[1]["human_boundary"]["size"] == [8, 8]
    assert got[2]["pseudo_boundary"] is None and got[2]["height"] == 10  # labels null on error
    assert {r["checkpoint_sha"] for r in got} == {"scratch:tiny:0"}
    assert shard_counts([uri]) == {
        "num_rows": 3,
        "num_good": 2,
        "num_failed": 1,
        "error_counts": {"image_decode": 1},
        "first_errors": ["c: image_decode: c: bad"],
    }
    other = plan_blocks(["b", "a2", "d"], 3)[0]
    with pytest.raises(PlanMismatchError, match="new --output"):
        block_status(gen, other)
    with pytest.raises(RuntimeError, match="missing"):
        block_table(block, {"b": _row(1)}, CONSTANTS)
    assert [p.name for p in (tmp_path / "d" / "gen-x").iterdir()] == ["part-000000.parquet"]
    (tmp_path / "d" / "gen-x" / ".part-000001.parquet.tmp-abc").write_bytes(b"partial")
    assert clean_temp_files(gen) == 1


def test_merge_is_pseudo_or_human():
    rng = np.random.default_rng(0)
    p, h = rng.random((16, 16)) < 0.1, rng.random((16, 16)) < 0.1
    merged = merge_boundaries(mask_to_rle(p), mask_to_rle(h), 16)
    np.testing.assert_array_equal(rle_to_mask(merged), p | h)
    assert merge_boundaries(mask_to_rle(p), None, 16) == mask_to_rle(p)
    assert rle_to_mask(merge_boundaries(mask_to_rle(p), mask_to_rle(h), 8)).shape == (8, 8)
    batch = {
        "image_id": np.array(["a", "b"], dtype=object),
        "source_uri": np.array(["/a", "/b"], dtype=object),
        "dataset": np.array(["d", "d"], dtype=object),
        "pseudo_boundary": np.array([mask_to_rle(p), None], dtype=object),
        "human_boundary": np.array([mask_to_rle(h), None], dtype=object),
        "error": np.array([None, "read_failed: /b: gone"], dtype=object),
    }
    out = merge_rows(batch, 16)
    assert out["image_id"].tolist() == ["a"] and out["annotation_kind"].tolist() == ["shard"]
    assert json.loads(out["annotation"][0]) == out["merged"][0]


def test_select_generations_by_checkpoint(tmp_path):
    for ds, sha, spec in (("d1", "s1", "ck1"), ("d1", "s2", "ck2"), ("d2", "s1", "ck1")):
        gen = tmp_path / ds / f"gen-{sha}"
        gen.mkdir(parents=True)
        (gen / layout.PLAN_FILE).write_text(
            json.dumps({"dataset": ds, "checkpoint_sha": sha, "checkpoint": spec})
        )
        (gen / layout.SUCCESS_FILE).write_text("{}")
    assert select_generations(str(tmp_path), "ck1") == [
        str(tmp_path / "d1/gen-s1"),
        str(tmp_path / "d2/gen-s1"),
    ]
    assert select_generations(str(tmp_path / "d1"), "s2") == [str(tmp_path / "d1/gen-s2")]
    with pytest.raises(ValueError, match="several match"):
        select_generations(str(tmp_path))
    with pytest.raises(ValueError, match="none matches"):
        select_generations(str(tmp_path), "ck2")
    (tmp_path / "d2/gen-s1" / layout.SUCCESS_FILE).unlink()
    with pytest.raises(ValueError, match="incomplete"):
        select_generations(str(tmp_path / "d2"))
    assert select_generations(str(tmp_path / "d2"), allow_incomplete=True)


def test_registry_lists_the_seed_datasets():
    entries = load_registry("configs/datasets.yaml")
    assert len(entries) == 40
    assert entries["SA1B"] == {"type": "sa1b", "input": "", "split": "all", "size": 318557}
    assert entries["COCONut-b"]["size"] == 123403 and entries["TreeCount"]["size"] == 83
    assert sum(e["size"] for e in entries.values()) == 1_159_835  # the seed list, ~1.2 M
    for name, entry in entries.items():
        assert validate_entry(name, entry) == []
    assert {e["mode"] for e in entries.values() if e["type"] == "labelmap"} == {
        "single_channel",
        "force_binary",
        "rgb",
    }
    assert validate_entry("x", {"type": "zip", "mode": "gray", "size": -1}) == [
        "x: type must be one of sa1b, coco, labelmap, images, shards",
        "x: mode must be one of single_channel, force_binary, rgb",
        "x: size must be a positive integer",
    ]


def test_presets_load_and_bad_values_name_flags():
    cfg = load_config(LabelConfig, "configs/pseudo_label.yaml")
    assert (cfg.model.resolution, cfg.model.threshold, cfg.thickness) == (1800, 0.5, 9)
    smoke = load_config(LabelConfig, "configs/smoke/pseudo_label.yaml")
    assert smoke.model.checkpoint == "scratch:tiny" and smoke.model.device == "cpu"
    with pytest.raises(ConfigError) as err:
        load_config(
            LabelConfig,
            overrides=["model.threshold=1.5", "compute.batch_size=0", "source.mode=gray"],
        )
    for flag in ("model.threshold", "compute.batch_size", "source.mode"):
        assert flag in str(err.value)
