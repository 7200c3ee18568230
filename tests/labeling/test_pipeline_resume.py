"""Idempotent re-runs, interrupted-run resume, re-labeling generations, merged labels, the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from directsam.cli.label import main
from directsam.config import ConfigError
from directsam.data.boundary import masks_to_boundary
from directsam.data.rle import mask_to_rle
from directsam.data.sa1b import parse_sa1b_annotation
from directsam.data.sample import make_sample
from directsam.data.sources.shards import layout
from directsam.data.sources.shards.counts import merged_label_counts
from directsam.data.sources.shards.merged import read_merged_labels
from directsam.data.targets import decode_rows
from directsam.labeling.pipeline import run_labeling
from tests.labeling.corrupt import corrupt_sa1b
from tests.labeling.helpers import R, assert_good_rows_valid, label_config, mask, read_generation

pytestmark = pytest.mark.ray
QUIET = {"log": lambda *_: None}


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sa1b")
    return make_sample(
        root, num_images=10, seed=11, kind="sa1b", height=48, width=64, images_per_tar=4
    )


@pytest.fixture(scope="module")
def full_run(ray_local, sample, tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    summary = run_labeling(label_config("sa1b", sample, out, dataset="sa"), **QUIET)
    return summary, read_generation(summary["generation"])


def _files(generation: str) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in Path(generation).glob("part-*.parquet")}


def test_full_run_rows_and_human_reference(full_run, sample):
    summary, rows = full_run
    assert summary["complete"] and summary["num_blocks"] == 3  # 10 rows in blocks of 4
    assert summary["num_rows"] == summary["num_good"] == summary["num_inputs"] == 10
    assert_good_rows_valid(rows)
    for n in (1, 7):
        _, rles = parse_sa1b_annotation(
            (sample / f"sa_00000{(n - 1) // 4}" / f"sa_{n}.json").read_bytes()
        )
        assert rows[f"sa_{n}"]["human_boundary"] == mask_to_rle(masks_to_boundary(rles, R, 3))
    success = json.loads(Path(summary["generation"], layout.SUCCESS_FILE).read_text())
    assert success["num_rows"] == 10 and success["config"]["model"]["checkpoint"] == "scratch:tiny"
    assert success["checkpoint_sha"] == "scratch:tiny:0" and "lineage" in success


def test_rerun_writes_nothing(full_run, sample):
    summary, _ = full_run
    before = _files(summary["generation"])
    out = Path(summary["generation"]).parents[1]
    again = run_labeling(label_config("sa1b", sample, out, dataset="sa"), **QUIET)
    assert again["blocks_written"] == 0 and again["blocks_skipped"] == 3
    assert again["num_rows"] == 10 and _files(summary["generation"]) == before


def test_tars_give_the_same_rows_as_folders(ray_local, full_run, sample, tmp_path):
    _, rows = full_run
    summary = run_labeling(label_config("sa1b", sample / "tars", tmp_path, dataset="sa"), **QUIET)
    tar_rows = read_generation(summary["generation"])
    assert sorted(tar_rows) == sorted(rows)
    for key, row in tar_rows.items():
        assert row["source_uri"].endswith(f".tar::{key}.jpg")
        assert row["human_boundary"] == rows[key]["human_boundary"]
        agree = (mask(row["pseudo_boundary"]) == mask(rows[key]["pseudo_boundary"])).mean()
        assert agree > 0.999  # same model and pixels; only batch composition may differ


def test_interrupted_run_plus_rerun_equals_uninterrupted(ray_local, full_run, sample, tmp_path):
    _, rows = full_run
    cfg = label_config("sa1b", sample, tmp_path, dataset="sa")
    cfg.compute.max_blocks = 1  # stop (break out of the stream) after the first written block
    first = run_labeling(cfg, **QUIET)
    gen = Path(first["generation"])
    assert first["blocks_written"] == 1 and not first["complete"]
    assert len(list(gen.glob("part-*"))) == 1 and not (gen / layout.SUCCESS_FILE).exists()
    (gen / ".part-000002.parquet.tmp-deadbeef").write_bytes(b"half-written by a killed run")
    cfg.compute.max_blocks = None
    second = run_labeling(cfg, **QUIET)
    assert second["blocks_skipped"] == 1 and second["blocks_written"] == 2 and second["complete"]
    resumed = read_generation(gen)
    assert sorted(resumed) == sorted(rows) and not list(gen.glob(".*tmp*"))
    for key, row in resumed.items():
        assert row["human_boundary"] == rows[key]["human_boundary"]
        assert (mask(row["pseudo_boundary"]) == mask(rows[key]["pseudo_boundary"])).mean() > 0.999
    assert sorted(p.name for p in gen.glob("part-*")) == [
        f"part-00000{k}.parquet" for k in range(3)
    ]


def test_missing_middle_chunk_of_a_tar_is_rewritten_and_the_run_completes(
    ray_local, full_run, sample, tmp_path
):
    """Chunks of one tar can land out of order, so a killed run may leave a gap before the tar's
    final chunk: the re-run reads from the gap, skips the chunks on disk and still finishes."""
    _, rows = full_run
    cfg = label_config("sa1b", sample / "tars", tmp_path, dataset="sa")
    cfg.compute.rows_per_shard = 2  # tar 0 holds 4 images: chunks 0 and 1 (final)
    first = run_labeling(cfg, **QUIET)
    gen = Path(first["generation"])
    assert first["complete"]
    files = _files(str(gen))
    (gen / "part-sa_000000-00000.parquet").unlink()
    (gen / layout.SUCCESS_FILE).unlink()
    second = run_labeling(cfg, **QUIET)
    assert second["complete"] and second["blocks_written"] == 1
    assert second["blocks_skipped"] == len(files) - 1
    assert (gen / layout.SUCCESS_FILE).exists()
    assert sorted(read_generation(gen)) == sorted(rows)
    assert _files(str(gen)).keys() == files.keys()


def test_changed_settings_are_refused(full_run, sample):
    summary, _ = full_run
    cfg = label_config("sa1b", sample, Path(summary["generation"]).parents[1], dataset="sa")
    cfg.model.threshold = 0.4
    with pytest.raises(ConfigError, match="--threshold: 0.5 on disk vs 0.4 now"):
        run_labeling(cfg, **QUIET)


def test_relabel_shards_then_merged_labels(ray_local, tmp_path):
    corrupt_sa1b(tmp_path / "in")
    out = tmp_path / "out"
    gen0 = run_labeling(label_config("sa1b", tmp_path / "in", out, dataset="c"), **QUIET)
    rows0 = read_generation(gen0["generation"])
    cfg = label_config("shards", gen0["generation"], out)
    cfg.model.checkpoint = "scratch:tiny:1"
    cfg.thickness = 9  # ignored: the human boundary is carried forward with its thickness
    gen1 = run_labeling(cfg, **QUIET)
    rows1 = read_generation(gen1["generation"])
    assert gen1["generation"] == str(out / "c" / "gen-scratch-tiny-1") and gen1["dataset"] == "c"
    assert sorted(rows1) == sorted(rows0)
    for key, row in rows1.items():
        old = rows0[key]
        assert (row["error"], row["human_boundary"]) == (old["error"], old["human_boundary"])
        assert row["source_uri"] == old["source_uri"] and row["thickness"] == 3
        assert row["checkpoint_sha"] == "scratch:tiny:1"
    good = [k for k, r in rows1.items() if r["error"] is None]
    assert any(rows1[k]["pseudo_boundary"] != rows0[k]["pseudo_boundary"] for k in good)

    # Merged labels pick the generation by checkpoint: exactly pseudo OR human, failures out.
    with pytest.raises(ValueError, match="several match"):
        read_merged_labels(str(out), R)
    assert merged_label_counts(str(out), "scratch:tiny:1") == {
        "num_rows": 10,
        "num_good": 4,
        "num_failed": 6,
    }
    merged = {
        r["image_id"]: r for r in read_merged_labels(str(out), R, "scratch:tiny:1").take_all()
    }
    assert sorted(merged) == sorted(good)
    for key in good:
        expected = mask(rows1[key]["pseudo_boundary"]) | mask(rows1[key]["human_boundary"])
        np.testing.assert_array_equal(mask(merged[key]["merged"]), expected)
    small = read_merged_labels(str(out / "c"), 32, "scratch:tiny", with_images=True).take_all()
    batch = {k: np.array([r[k] for r in small], dtype=object) for k in small[0]}
    decoded = decode_rows(batch, 32, thickness=1)
    assert decoded["target"].shape == (4, 32, 32) and decoded["has_target"].all()
    for i, row in enumerate(small):
        np.testing.assert_array_equal(decoded["target"][i], mask(row["merged"]))


def test_cli_smoke_job_with_mlflow_and_progress_lines(
    ray_local, sample, tmp_path, mlflow_uri, capsys
):
    from mlflow.tracking import MlflowClient

    shutil.copytree(sample / "sa_000001", tmp_path / "in" / "sa_000001")
    argv = [
        "--smoke-test",
        "--input",
        str(tmp_path / "in"),
        "--output",
        str(tmp_path / "out"),
        "--tracking-uri",
        mlflow_uri,
        "--progress-interval",
        "0",
    ]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["num_rows"] == 4 and summary["blocks_written"] == 1
    gen = tmp_path / "out" / "labels" / "smoke" / "gen-scratch-tiny-0"  # smoke: OUTPUT/labels
    assert summary["generation"] == str(gen) and summary["dataset"] == "smoke"
    progress = [line for line in err.splitlines() if line.endswith(" img/s")]
    assert progress and progress[-1].startswith("4/4 images, ")
    client = MlflowClient(tracking_uri=mlflow_uri)
    exp = client.get_experiment_by_name("directsam-label")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.data.metrics["num_rows"] == 4 and run.data.metrics["images_per_s"] > 0
    assert run.data.metrics["num_failed"] == 0 and run.data.metrics["blocks_written"] == 1
    assert run.data.params["model.checkpoint"] == "scratch:tiny"
    assert run.data.params["model.resolution"] == "64"
    assert main(argv) == 0  # resumed: same MLflow run, nothing rewritten
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["blocks_written"] == 0
    assert len(client.search_runs([exp.experiment_id])) == 1
    assert main([*argv, "--threshold", "1.5"]) == 2
    assert "--threshold" in capsys.readouterr().err
