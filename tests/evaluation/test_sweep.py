"""End to end on a local Ray cluster: generated sample + scratch model -> cache -> Tune sweep ->
sqlite MLflow; metrics equal directsam.metrics on the cached probabilities; re-runs reuse the
cache; compare reads the runs back."""

from __future__ import annotations

import csv
import io

import numpy as np
import pyarrow.parquet as pq
import pytest

from directsam.cli.compare import compare_main
from directsam.cli.evaluate import evaluate_main, sweep_main
from directsam.evaluation import cache as cache_mod
from directsam.evaluation import report

pytestmark = pytest.mark.ray

RES = 128
THRESHOLDS = [0.1, 0.2, 0.3, 0.4, 0.5]
EXPERIMENT = "eval-test"


@pytest.fixture(scope="module")
def spread_checkpoint(tmp_path_factory) -> str:
    """A random-init tiny SegFormer whose probabilities spread over [0, 1] (a scratch model's
    sit near 0.5, which would make every threshold but one give the same prediction)."""
    import torch

    from directsam.model.build import load_model
    from directsam.model.checkpoint import save_checkpoint

    model = load_model("scratch:tiny:3")
    with torch.no_grad():
        model.decode_head.classifier.weight.mul_(2000.0)
        model.decode_head.classifier.bias.fill_(-0.8)
    return str(
        save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "spread", {"resolution": RES})
    )


@pytest.fixture(scope="module")
def env(tmp_path_factory, ray_local, sample_root):
    root = tmp_path_factory.mktemp("eval")
    return {"root": root, "uri": f"sqlite:///{root / 'mlflow.db'}", "sample": sample_root}


def _argv(env, checkpoint: str) -> list[str]:
    return [
        "--checkpoint", checkpoint, "--source", "sa1b", "--input", str(env["sample"]),
        "--dataset", "sample", "--split", "all", "--resolution", str(RES), "--tolerance", "5", "--num-samples", "6",
        "--thresholds", ",".join(map(str, THRESHOLDS)), "--tracking-uri", env["uri"],
        "--experiment", EXPERIMENT, "--cache-dir", str(env["root"] / "cache"),
        "--output", str(env["root"] / "out"), "--num-panels", "2", "--batch-size", "3",
    ]  # fmt: skip


def _runs(uri: str, sweep_id: str | None = None):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    if sweep_id is not None:
        runs = [r for r in runs if r.data.tags.get(report.TAG_SWEEP) == sweep_id]
    return client, exp, runs


def _cached(location: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """image_id -> (uint8 probs, bool GT), read with plain pyarrow (not the code under test)."""
    from directsam.data.rle import rle_to_mask

    table = pq.read_table(location).to_pylist()
    return {
        r["image_id"]: (
            np.frombuffer(r["probs_u8"], np.uint8).reshape(RES, RES),
            rle_to_mask(r["gt_boundary"]),
        )
        for r in table
    }


def _expected(cached, threshold: float, tolerance: int) -> dict[str, float]:
    from directsam.metrics import aggregate, boundary_prf, effective_contour_recall

    ids = sorted(cached)
    preds = {i: cached[i][0].astype(np.float64) / 255.0 >= threshold for i in ids}
    out = dict(
        aggregate([effective_contour_recall(cached[i][1], preds[i], tolerance) for i in ids])
    )
    prf = np.array([boundary_prf(cached[i][1], preds[i], tolerance) for i in ids])
    out.update(mean_precision=float(np.mean(prf[:, 0])), mean_boundary_recall=float(np.mean(prf[:, 1])),
               mean_f1=float(np.mean(prf[:, 2])))  # fmt: skip
    return out


@pytest.fixture(scope="module")
def swept(env, spread_checkpoint):
    cache_mod.reset_model_passes()
    assert sweep_main(_argv(env, spread_checkpoint)) == 0
    client, exp, runs = _runs(env["uri"])
    (summary,) = [r for r in runs if r.data.tags[report.TAG_KIND] == "summary"]
    return {"summary": summary, "sweep_id": summary.data.tags[report.TAG_SWEEP],
            "location": summary.data.tags[report.TAG_CACHE], "checkpoint": spread_checkpoint}  # fmt: skip


def test_sweep_leaves_trials_and_summary_with_direct_metric_values(env, swept):
    assert cache_mod.model_passes()["passes"] == 1 and cache_mod.model_passes()["images"] == 6
    client, exp, runs = _runs(env["uri"], swept["sweep_id"])
    assert exp.artifact_location == (env["root"] / "mlartifacts").as_uri()  # explicit, not ./mlruns
    trials = [r for r in runs if r.data.tags[report.TAG_KIND] == "trial"]
    assert len(trials) == 5 and len(runs) == 6
    assert sorted(float(r.data.params["threshold"]) for r in trials) == THRESHOLDS
    cached = _cached(swept["location"])
    assert len(cached) == 6
    for run in trials:
        p, m, tags = run.data.params, run.data.metrics, run.data.tags
        assert run.info.status == "FINISHED"
        assert (p["checkpoint"], p["dataset"], p["resolution"], p["tolerance"]) == (
            swept["checkpoint"], "sample", str(RES), "5")  # fmt: skip
        assert (
            tags[report.TAG_CHECKPOINT] == swept["checkpoint"]
            and tags[report.TAG_DATASET] == "sample"
        )
        expected = _expected(cached, float(p["threshold"]), 5)
        for name in ("mean_recall", "mean_num_tokens", "num_images", "num_skipped", "mean_precision",
                     "mean_boundary_recall", "mean_f1"):  # fmt: skip
            assert m[name] == expected[name], name
        assert m["num_images"] == 6 and m["num_failed"] == 0
    tokens = {r.data.metrics["mean_num_tokens"] for r in trials}
    assert len(tokens) > 1  # the thresholds really give different predictions

    summary = swept["summary"]
    names = {a.path for a in client.list_artifacts(summary.info.run_id)}
    assert {"recall_vs_tokens.png", "results.csv", "panels"} <= names
    panels = [a.path for a in client.list_artifacts(summary.info.run_id, "panels")]
    assert panels == ["panels/sa_1.png", "panels/sa_2.png"]
    local = client.download_artifacts(summary.info.run_id, "results.csv", str(env["root"]))
    table = list(csv.DictReader(io.StringIO(open(local).read())))
    assert [float(r["threshold"]) for r in table] == THRESHOLDS
    by_t = {float(r.data.params["threshold"]): r.data.metrics for r in trials}
    assert all(float(r["mean_recall"]) == by_t[float(r["threshold"])]["mean_recall"] for r in table)
    manifest = cache_mod.read_manifest(swept["location"])
    assert summary.data.params["checkpoint_sha"] == manifest["spec"]["checkpoint_sha"]
    assert summary.data.tags[report.TAG_CHECKPOINT_SHA] == manifest["spec"]["checkpoint_sha"]


def test_cache_matches_a_direct_predictor_run(swept, env):
    """Cached probabilities = BoundaryPredictor on the same images within quantisation; the GT
    is the annotation's boundary at the eval resolution with thickness 2."""
    from directsam.data.decode import decode_image, resize_rgb
    from directsam.data.sources import SourceSpec, list_source, read_uri
    from directsam.data.targets import annotation_to_boundary
    from directsam.inference.predictor import BoundaryPredictor

    cached = _cached(swept["location"])
    items = list_source(SourceSpec("sa1b", str(env["sample"]), split="all", num_samples=6))
    predictor = BoundaryPredictor(swept["checkpoint"], device="cpu", dtype="fp32", resolution=RES)
    for item in items:
        image = decode_image(read_uri(item.source_uri))
        probs = predictor.predict([resize_rgb(image, RES)], out_size=RES)[0]
        q, gt = cached[item.image_id]
        assert np.abs(cache_mod.dequantize_probs(q) - probs).max() <= 0.5 / 255 + 1e-4
        expected_gt = annotation_to_boundary(read_uri(item.annotation_uri), "sa1b", image.shape[:2],
                                             RES, 2, item.image_id)  # fmt: skip
        np.testing.assert_array_equal(gt, expected_gt.astype(bool))


def test_rerun_reuses_the_cache(env, swept, capsys):
    before = cache_mod.read_manifest(swept["location"])
    assert evaluate_main(_argv(env, swept["checkpoint"])) == 0
    assert "reused" in capsys.readouterr().out
    assert cache_mod.model_passes()["passes"] == 1  # no second model pass
    assert cache_mod.read_manifest(swept["location"]) == before
    _, _, runs = _runs(env["uri"])
    kinds = sorted(r.data.tags[report.TAG_KIND] for r in runs)
    assert kinds == ["summary"] * 2 + ["trial"] * 10  # evaluate logs the same layout


def test_tolerance_grid_sweep_reuses_the_cache(env, swept):
    """A thresholds x tolerances grid: one trial run per point, scored from the same cache."""
    argv = [*_argv(env, swept["checkpoint"]), "--thresholds", "0.2,0.4", "--tolerances", "3,5",
            "--num-panels", "0"]  # fmt: skip
    assert sweep_main(argv) == 0
    assert cache_mod.model_passes()["passes"] == 1  # still the fixture's single model pass
    client, _, runs = _runs(env["uri"])
    sweep_ids = {r.data.tags[report.TAG_SWEEP] for r in runs}
    (sweep_id,) = [s for s in sweep_ids if s.startswith("sample-sweep") and s != swept["sweep_id"]]
    trials = [r for r in runs if r.data.tags[report.TAG_SWEEP] == sweep_id
              and r.data.tags[report.TAG_KIND] == "trial"]  # fmt: skip
    points = sorted(
        (float(r.data.params["threshold"]), int(r.data.params["tolerance"])) for r in trials
    )
    assert points == [(0.2, 3), (0.2, 5), (0.4, 3), (0.4, 5)]
    cached = _cached(swept["location"])
    for run in trials:
        expected = _expected(
            cached, float(run.data.params["threshold"]), int(run.data.params["tolerance"])
        )
        for name in ("mean_recall", "mean_num_tokens", "num_images", "mean_precision", "mean_f1"):
            assert run.data.metrics[name] == expected[name], name
    assert _expected(cached, 0.2, 3)["mean_recall"] != _expected(cached, 0.2, 5)["mean_recall"]


def test_compare_reads_both_checkpoints_back(env, swept, capsys):
    assert (
        evaluate_main([*_argv(env, "scratch:tiny"), "--thresholds", "0.3,0.5", "--num-panels", "0"])
        == 0
    )
    assert cache_mod.model_passes()["passes"] == 2
    capsys.readouterr()
    png = env["root"] / "compare.png"
    assert (
        compare_main(
            ["--experiment", EXPERIMENT, "--tracking-uri", env["uri"], "--output", str(png)]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert f"checkpoint {swept['checkpoint']} | dataset sample" in out
    assert "checkpoint scratch:tiny | dataset sample" in out
    assert swept["sweep_id"] not in out  # the later evaluate of the same checkpoint supersedes it
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
