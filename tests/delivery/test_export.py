"""Hub-ready export (from_pretrained + model card with an MLflow evaluation table) and ONNX."""

from __future__ import annotations

import json

import numpy as np


def test_hub_export_loads_with_from_pretrained_and_has_card(tmp_path, tiny_checkpoint, mlflow_uri):
    import torch
    from transformers import SegformerForSemanticSegmentation, SegformerImageProcessor

    from directsam.cli import main
    from directsam.evaluation.report import KIND_TRIAL, log_trial_runs, run_tags
    from directsam.model import checkpoint_sha, load_model

    sha = checkpoint_sha(str(tiny_checkpoint))
    exp = "directsam-eval"
    rows = [
        {
            "checkpoint": "elsewhere",
            "dataset": "sample",
            "resolution": 64,
            "tolerance": 5,
            "threshold": t,
            "mean_recall": r,
            "mean_num_tokens": n,
            "num_images": 8,
            "num_skipped": 0,
            "num_failed": 0,
            "mean_precision": 0.5,
            "mean_boundary_recall": r,
            "mean_f1": 0.6,
        }
        for t, r, n in ((0.3, 0.91, 40.0), (0.5, 0.82, 21.5))
    ]
    log_trial_runs(mlflow_uri, exp, rows, run_tags(KIND_TRIAL, "s1", "elsewhere", "sample", sha))
    other = [dict(rows[0], threshold=0.4, mean_recall=0.11)]
    log_trial_runs(mlflow_uri, exp, other, run_tags(KIND_TRIAL, "s2", "x", "sample", "other"))

    out = tmp_path / "hub"
    assert (
        main(
            [
                "export",
                "--checkpoint",
                str(tiny_checkpoint),
                "--output",
                str(out),
                "--tracking-uri",
                mlflow_uri,
                "--experiment",
                "directsam-eval",
            ]
        )
        == 0
    )
    assert {
        "config.json",
        "model.safetensors",
        "directsam.json",
        "preprocessor_config.json",
        "README.md",
    } <= {p.name for p in out.iterdir()}
    model = SegformerForSemanticSegmentation.from_pretrained(out).eval()
    ref = load_model(str(tiny_checkpoint))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(pixel_values=x).logits, ref(pixel_values=x).logits)
    assert model.config.id2label == {0: "boundary"}
    processor = SegformerImageProcessor.from_pretrained(out)
    assert processor.size == {"height": 64, "width": 64}
    meta = json.loads((out / "directsam.json").read_text())
    assert meta["source_checkpoint_sha"] == sha and meta["resolution"] == 64
    card = (out / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: transformers" in card
    for section in ("## Architecture", "## Training", "## Evaluation", "## Licence notes"):
        assert section in card
    assert "SA-1B Dataset Research License" in card
    assert "| sample | 64 | 5 | 0.3 | 40.0 | 0.9100 |" in card
    assert "| sample | 64 | 5 | 0.5 | 21.5 | 0.8200 |" in card
    assert "0.1100" not in card  # another checkpoint's run is not in this card


def test_onnx_export_parity(tmp_path, tiny_checkpoint):
    import onnxruntime as ort
    import torch

    from directsam.cli import main
    from directsam.delivery.onnx_export import LOGITS_ATOL, PROBS_ATOL
    from directsam.inference import BoundaryPredictor

    out = tmp_path / "onnx"
    assert (
        main(
            [
                "export",
                "--format",
                "onnx",
                "--checkpoint",
                str(tiny_checkpoint),
                "--output",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads((out / "onnx_export.json").read_text())
    assert [r["batch"] for r in report["parity"]] == [1, 3]
    assert all(r["probs_max_abs"] <= PROBS_ATOL for r in report["parity"])
    assert all(r["logits_max_abs"] <= LOGITS_ATOL for r in report["parity"])
    # Independent check at another batch size (dynamic axis) against the predictor.
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[0] == "batch"
    x = np.random.default_rng(1).standard_normal((5, 3, 64, 64)).astype(np.float32)
    logits, probs = session.run(None, {"pixel_values": x})
    ref = BoundaryPredictor(str(tiny_checkpoint), resolution=64, dtype="fp32")
    expected = ref.predict_pixels(torch.from_numpy(x)).numpy()
    assert probs.shape == (5, 64, 64) and logits.shape == (5, 1, 16, 16)
    np.testing.assert_allclose(probs, expected, atol=PROBS_ATOL)
