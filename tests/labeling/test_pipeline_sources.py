"""Every source type through the Ray Data pipeline and the ``read_source`` datasets (local Ray)."""

from __future__ import annotations

import pytest

from directsam.data.boundary import label_map_to_boundary
from directsam.data.decode import decode_label_map, resize_label_map
from directsam.data.rle import mask_to_rle
from directsam.data.sample import make_sample
from directsam.data.sources import SourceSpec, list_source, read_source
from directsam.labeling.pipeline import run_labeling
from tests.labeling.corrupt import code_of, corrupt_labelmap, corrupt_sa1b
from tests.labeling.helpers import R, assert_good_rows_valid, label_config, read_generation

pytestmark = pytest.mark.ray


def _run(cfg):
    summary = run_labeling(cfg, log=lambda *_: None)
    return summary, read_generation(summary["generation"])


def test_corrupt_sa1b_rows_reconcile(ray_local, tmp_path):
    expected = corrupt_sa1b(tmp_path / "in")
    lines: list[str] = []
    summary = run_labeling(label_config("sa1b", tmp_path / "in", tmp_path / "out"), lines.append)
    rows = read_generation(summary["generation"])
    assert summary["num_inputs"] == summary["num_rows"] == len(rows) == 10
    assert summary["num_good"] + summary["num_failed"] == 10 and summary["num_failed"] == 6
    assert {k: code_of(r["error"]) for k, r in rows.items()} == expected
    assert summary["error_counts"] == {
        "annotation_invalid": 1,
        "annotation_missing": 1,
        "image_decode": 3,
        "rle_size_mismatch": 1,
    }
    assert summary["first_errors"][0].startswith("sa_1: image_decode: ")
    assert "in: 10 rows (4 good, 6 failed) in 3/3 blocks" in lines
    failed = [line for line in lines if line.startswith("  failed: ")]  # first reasons printed
    assert len(failed) == 6 and failed[0].startswith("  failed: sa_1: image_decode: ")
    assert_good_rows_valid(rows)
    assert rows["sa_5"]["height"] == 48  # the image decoded; only its JSON was bad


def test_labelmap_rows(ray_local, tmp_path):
    # One mode through Ray; every mode is checked against the reference in test_targets.py.
    mode = "rgb"
    expected = corrupt_labelmap(tmp_path / "in")
    cfg = label_config("labelmap", tmp_path / "in", tmp_path / "out", mode=mode, dataset="lm")
    summary, rows = _run(cfg)
    assert {k: code_of(r["error"]) for k, r in rows.items()} == expected
    assert summary["num_rows"] == 5 and summary["num_failed"] == 3
    assert_good_rows_valid(rows)
    label = (tmp_path / "in" / "labels" / "img_000004.png").read_bytes()
    ref = label_map_to_boundary(resize_label_map(decode_label_map(label, mode=mode), R), 3)
    assert rows["img_000004"]["human_boundary"] == mask_to_rle(ref)


def test_coco_and_images(ray_local, tmp_path):
    root = make_sample(tmp_path / "coco", num_images=5, seed=8, kind="coco", height=48, width=64)
    summary, rows = _run(label_config("coco", root, tmp_path / "out"))
    assert sorted(rows) == ["1", "2", "3", "4", "5"] and summary["num_good"] == 5
    assert summary["generation"] == str(tmp_path / "out" / "coco" / "gen-scratch-tiny-0")
    assert_good_rows_valid(rows)
    # file:// URIs in and out (pyarrow filesystem resolution; same rows as plain paths).
    cfg = label_config("images", f"file://{root}/images", f"file://{tmp_path}/out", dataset="im")
    summary = run_labeling(cfg, log=lambda *_: None)
    assert summary["generation"] == f"file://{tmp_path}/out/im/gen-scratch-tiny-0"
    rows = read_generation(summary["generation"].removeprefix("file://"))
    assert summary["num_good"] == 5 and len(rows) == 5
    assert_good_rows_valid(rows, with_human=False)
    assert rows[f"{1:012d}"]["source_uri"] == str(root / "images" / f"{1:012d}.jpg")


def test_read_source_datasets_have_one_row_per_input(ray_local, tmp_path):
    sa1b = make_sample(
        tmp_path / "s", num_images=6, seed=9, kind="sa1b", height=32, width=40, images_per_tar=4
    )
    (sa1b / "sa_000000" / "sa_2.jpg").write_bytes(b"")  # read fine, fails to decode later
    coco = make_sample(tmp_path / "c", num_images=3, seed=9, kind="coco", height=32, width=40)
    lm = make_sample(tmp_path / "l", num_images=3, seed=9, kind="labelmap", height=32, width=40)
    for source, path in (
        ("sa1b", sa1b),
        ("coco", coco),
        ("labelmap", lm),
        ("images", coco / "images"),
    ):
        rows = read_source(SourceSpec(source, str(path))).take_all()
        assert sorted(r["image_id"] for r in rows) == [
            i.image_id for i in list_source(SourceSpec(source, str(path)))
        ]
    # Tar shards stream through read_webdataset; a subset goes through the listing: same rows.
    streamed = {
        r["image_id"]: r for r in read_source(SourceSpec("sa1b", str(sa1b / "tars"))).take_all()
    }
    listed = {
        r["image_id"]: r
        for r in read_source(SourceSpec("sa1b", str(sa1b / "tars"), num_samples=6)).take_all()
    }
    assert sorted(streamed) == sorted(listed) == [f"sa_{n}" for n in range(1, 7)]
    for key, row in streamed.items():
        for col in ("source_uri", "dataset", "annotation_kind", "error"):
            assert row[col] == listed[key][col], (key, col)
        assert bytes(row["image_bytes"]) == bytes(listed[key]["image_bytes"])
        assert bytes(row["annotation"]) == bytes(listed[key]["annotation"])
    assert bytes(streamed["sa_1"]["image_bytes"]).startswith(b"\xff\xd8")  # still compressed
    val = read_source(SourceSpec("sa1b", str(sa1b), split="val")).take_all()
    assert [r["image_id"] for r in val] == ["sa_6"]


def test_compute_resources_are_checked_against_the_cluster(ray_local, tmp_path):
    from directsam.config import ConfigError
    from directsam.labeling.pipeline import resolve_compute

    cfg = label_config("images", tmp_path, tmp_path / "out")
    assert resolve_compute(cfg) == {
        "device": "cpu",
        "num_gpus": None,
        "num_cpus": 1.0,
        "decode_tasks": 2,  # the cluster's CPUs
        "gpu_decode": False,  # CPU actors: the CPU tasks decode
    }
    cfg.compute.gpu_actors = 2  # two 1-CPU model actors would leave no CPU to decode
    with pytest.raises(ConfigError, match="--gpu-actors 2 CPU model actors"):
        resolve_compute(cfg)
    cfg.model.device, cfg.compute.gpus_per_actor = "cuda", 0.5
    with pytest.raises(ConfigError, match=r"--gpu-actors 2 x 0.5 GPU needs 1.0 GPUs"):
        resolve_compute(cfg)
