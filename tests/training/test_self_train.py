"""Stage 3 end to end: label a generated sample into shards, self-train on the merged labels.

One module-scoped local Ray cluster serves every test here. The sample (6 SA-1B-style images,
one with a truncated JPEG) is labeled once by ``directsam label`` (``scratch:b0`` at 64 px);
``directsam self-train --source shards`` then runs in Train local mode (``--num-workers 0``)
at 48 px, so the merged labels are also resized on the way (64 -> 48).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from directsam.config import load_config
from directsam.data.rle import rle_to_mask
from directsam.tracking.mlflow import RUN_NAME_TAG
from directsam.training.config import SelfTrainConfig

pytestmark = pytest.mark.ray

REPO = Path(__file__).resolve().parents[2]
LABEL_PRESET = REPO / "configs" / "smoke" / "pseudo_label.yaml"
SELF_TRAIN_PRESET = REPO / "configs" / "smoke" / "self_train.yaml"
SHARD_RES = 64  # labeling resolution (pseudo and human boundaries are stored at it)
TRAIN_RES = 48  # stage-3 resolution: merged labels are downscaled 64 -> 48
IDS = [f"sa_{n}" for n in range(1, 7)]
BROKEN = "sa_2"  # truncated JPEG: its shard row has `error` set and null labels
VAL_ID = "sa_6"  # shards hold out the last ceil(1%) of sorted ids: 1 of 6


@pytest.fixture(scope="module")
def labeled(ray_local, tmp_path_factory) -> tuple[Path, Path]:
    """(sample root, shard output root) of one ``directsam label`` run."""
    from directsam.cli.label import main as label_main
    from directsam.data.sample import make_sample

    root = tmp_path_factory.mktemp("self_train")
    sample = make_sample(root / "sample", num_images=6, seed=5, kind="sa1b", height=48, width=64)
    jpg = sample / "sa_000000" / f"{BROKEN}.jpg"
    jpg.write_bytes(jpg.read_bytes()[: jpg.stat().st_size // 2])
    out = root / "labels"
    argv = ["--config", str(LABEL_PRESET), "--input", str(sample), "--output", str(out),
            "--checkpoint", "scratch:b0", "--resolution", str(SHARD_RES), "--no-tracking"]  # fmt: skip
    assert label_main(argv) == 0
    return sample, out


def _shard_rows(shards: Path) -> dict[str, dict]:
    """image_id -> row of every part file under ``shards`` (one generation here)."""
    (success,) = shards.rglob("_SUCCESS.json")
    rows = {}
    for part in sorted(success.parent.glob("part-*.parquet")):
        for row in pq.read_table(part).to_pylist():
            assert row["image_id"] not in rows
            rows[row["image_id"]] = row
    return rows


def _any_pool(mask: np.ndarray, size: int) -> np.ndarray:
    """Plain reference downscale: an output pixel is boundary when any source pixel it
    overlaps (with positive area) is boundary."""
    n = mask.shape[0]
    out = np.zeros((size, size), dtype=bool)
    for i in range(size):
        r0, r1 = (i * n) // size, math.ceil((i + 1) * n / size)
        for j in range(size):
            c0, c1 = (j * n) // size, math.ceil((j + 1) * n / size)
            out[i, j] = mask[r0:r1, c0:c1].any()
    return out


def _expected_merged(row: dict, size: int) -> np.ndarray:
    """pseudo OR human of a shard row, by hand, at ``size``."""
    merged = rle_to_mask(row["pseudo_boundary"]).astype(bool)
    if row["human_boundary"] is not None:
        merged |= rle_to_mask(row["human_boundary"]).astype(bool)
    assert merged.shape == (SHARD_RES, SHARD_RES)
    return merged if size == SHARD_RES else _any_pool(merged, size)


def _config(shards: Path, *overrides: str) -> SelfTrainConfig:
    base = [f"source.input={shards}", f"data.resolution={TRAIN_RES}", "data.decode_cpus=0.5"]
    return load_config(SelfTrainConfig, SELF_TRAIN_PRESET, overrides=[*base, *overrides])


def _image_ids_by_pixels(sample: Path) -> dict[bytes, str]:
    """Training rows carry no id: identify them by their decoded, resized pixels."""
    from directsam.data.decode import decode_image, resize_rgb

    out = {}
    for image_id in IDS:
        if image_id != BROKEN:
            data = next(sample.glob(f"sa_*/{image_id}.jpg")).read_bytes()
            out[resize_rgb(decode_image(data, image_id), TRAIN_RES).tobytes()] = image_id
    assert len(out) == len(IDS) - 1
    return out


def _summary(stdout: str) -> dict:
    """The job's JSON summary line (Ray may forward worker output after it)."""
    for line in reversed(stdout.splitlines()):
        if line.startswith('{"run_name"'):
            return json.loads(line)
    raise AssertionError(f"no summary line in:\n{stdout}")


def test_labeled_shards_have_one_failed_row(labeled):
    from directsam.data.sources.shards.counts import merged_label_counts

    _, shards = labeled
    rows = _shard_rows(shards)
    assert sorted(rows) == IDS
    broken = rows[BROKEN]
    assert broken["error"].startswith("image_decode:")
    assert broken["pseudo_boundary"] is None and broken["human_boundary"] is None
    for image_id in IDS:
        if image_id != BROKEN:
            row = rows[image_id]
            assert row["error"] is None and row["resolution"] == SHARD_RES
            assert row["checkpoint"] == "scratch:b0" and row["human_boundary"] is not None
    assert merged_label_counts(str(shards)) == {"num_rows": 6, "num_good": 5, "num_failed": 1}


def test_training_input_equals_merged_labels_without_failed_rows(labeled):
    """``build_datasets`` (what the job trains on): train = good rows minus the held-out id,
    each target exactly the merged label of ``read_merged_labels`` at 48 px, which is
    pseudo OR human of the shard row downscaled by hand; the failed row is excluded and
    counted."""
    from directsam.data.sources.shards.merged import MERGED, read_merged_labels
    from directsam.training.data import IMAGE, TARGET, build_datasets, count_train_images
    from directsam.training.trainer import resolve_config

    sample, shards = labeled
    cfg = resolve_config(_config(shards))
    train, val = build_datasets(cfg)
    assert val is not None
    by_pixels = _image_ids_by_pixels(sample)
    merged = {
        r["image_id"]: rle_to_mask(r[MERGED]).astype(np.uint8)
        for r in read_merged_labels(str(shards), TRAIN_RES).take_all()
    }
    rows = _shard_rows(shards)
    assert sorted(merged) == [i for i in IDS if i != BROKEN]
    # OR really adds something: the human boundary is not inside the pseudo one everywhere.
    pseudo = [_expected_merged({**rows[i], "human_boundary": None}, SHARD_RES) for i in merged]
    full = [_expected_merged(rows[i], SHARD_RES) for i in merged]
    assert sum(int(f.sum() - p.sum()) for f, p in zip(full, pseudo)) > 0

    seen = {}
    for split, ds in (("train", train), ("val", val)):
        for row in ds.take_all():
            assert row[IMAGE].shape == (TRAIN_RES, TRAIN_RES, 3) and row[IMAGE].dtype == np.uint8
            assert row[TARGET].shape == (TRAIN_RES, TRAIN_RES) and row[TARGET].dtype == np.uint8
            image_id = by_pixels[row[IMAGE].tobytes()]
            assert image_id not in seen
            seen[image_id] = split
            np.testing.assert_array_equal(row[TARGET], merged[image_id], image_id)
            np.testing.assert_array_equal(
                row[TARGET], _expected_merged(rows[image_id], TRAIN_RES).astype(np.uint8)
            )
    assert seen == {i: "val" if i == VAL_ID else "train" for i in IDS if i != BROKEN}
    # Counted: the step plan uses 4 training images = 5 good rows - 1 held out.
    assert count_train_images(cfg) == 4 == sum(s == "train" for s in seen.values())


def test_self_train_cli_local_mode_checkpoint_and_mlflow(labeled, tmp_path, capsys):
    from mlflow.tracking import MlflowClient

    from directsam.cli.train import self_train_main

    _, shards = labeled
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = ["--config", str(SELF_TRAIN_PRESET), "--source", "shards", "--data", str(shards),
            "--init", "scratch:b0", "--max-steps", "2", "--num-workers", "0",
            "--storage-path", str(tmp_path / "runs"), "--tracking-uri", uri,
            "--set", f"data.resolution={TRAIN_RES}", "--set", "data.decode_cpus=0.5",
            "--set", "optim.batch_size=2", "--set", "optim.grad_accum=1",
            "--set", "checkpoint.every_steps=2", "--set", "validation.every_steps=2"]  # fmt: skip
    assert self_train_main(argv) == 0
    summary = _summary(capsys.readouterr().out)
    assert summary["metrics"]["step"] == 2 and summary["metrics"]["start_step"] == 0
    assert summary["run_name"].startswith("directsam-self-train-")

    ckpt = Path(summary["checkpoint"])
    assert ckpt.parent == tmp_path / "runs" / summary["run_name"]
    meta = json.loads((ckpt / "directsam.json").read_text())
    assert (meta["stage"], meta["step"], meta["resolution"]) == ("self_train", 2, TRAIN_RES)
    assert meta["init"] == "scratch:b0" and meta["dataset"] == shards.name
    source, data = meta["config"]["source"], meta["config"]["data"]
    assert (source["type"], source["input"], data["resolution"]) == (
        "shards",
        str(shards),
        TRAIN_RES,
    )
    assert meta["config"]["optim"]["max_steps"] == 2

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("directsam-self-train")
    assert exp is not None
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.run_id == summary["mlflow_run_id"] and run.info.status == "FINISHED"
    assert run.data.tags[RUN_NAME_TAG] == summary["run_name"]
    assert run.data.params["stage"] == "self_train"
    assert run.data.params["source.type"] == "shards"
    assert run.data.params["data.resolution"] == str(TRAIN_RES)
    loss = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "loss")}
    assert sorted(loss) == [1, 2] and all(0 < v < 10 for v in loss.values()), loss
    val = client.get_metric_history(run.info.run_id, "val_mean_num_tokens")
    assert [m.step for m in val] == [2]


def test_failed_held_out_row_does_not_shrink_the_training_count(labeled, tmp_path):
    """The last sorted id is the held-out one; when its row failed, all good rows still train."""
    import shutil

    import pyarrow as pa

    from directsam.data.sources.shards.counts import merged_label_counts, shard_val_keys
    from directsam.training.data import count_train_images
    from directsam.training.trainer import resolve_config

    _, out = labeled
    copy = tmp_path / "labels"
    shutil.copytree(out, copy)
    last = max(_shard_rows(copy), key=str)  # ids sort as strings, like the split
    (success,) = copy.rglob("_SUCCESS.json")
    for part in success.parent.glob("part-*.parquet"):
        table = pq.read_table(part)
        ids = table["image_id"].to_pylist()
        if last not in ids:
            continue
        errors = [
            "image_decode: planted" if i == last else e
            for i, e in zip(ids, table["error"].to_pylist())
        ]
        idx = table.schema.get_field_index("error")
        table = table.set_column(idx, "error", pa.array(errors, type=pa.string()))
        pq.write_table(table, part)
    counts = merged_label_counts(str(copy), None)
    assert counts["num_failed"] == 2
    val = shard_val_keys(str(copy), None)
    assert {i for _, i in val} == {last}  # the split still equals the evaluation split
    assert shard_val_keys(str(copy), None, good_only=True) == set()
    cfg = resolve_config(_config(copy))
    assert count_train_images(cfg) == counts["num_good"] == 4


def test_preserve_order_gives_the_same_training_rows_in_the_source_order(labeled):
    """``data.preserve_order`` (on in the smoke presets and the demo): every pass delivers the
    training rows in shard order (part files, then rows: sorted ids), in local mode (the
    datasets' own context) and in a worker group (Train's ingest options)."""
    from directsam.training.data import IMAGE, build_datasets
    from directsam.training.trainer import _ingest_options, resolve_config

    sample, shards = labeled
    by_pixels = _image_ids_by_pixels(sample)
    expected = sorted(i for i in IDS if i not in (BROKEN, VAL_ID))
    cfg = resolve_config(_config(shards, "data.preserve_order=true"))
    assert _ingest_options(cfg).preserve_order
    for _ in range(3):
        train, _ = build_datasets(cfg)
        assert train.context.execution_options.preserve_order
        order = [by_pixels[row[IMAGE].tobytes()] for row in train.iter_rows()]
        assert order == expected
    off = resolve_config(_config(shards, "data.preserve_order=false"))
    assert not build_datasets(off)[0].context.execution_options.preserve_order
