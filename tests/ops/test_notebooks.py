"""The notebooks run top to bottom against a generated sample, a scratch model, shards written
by ``directsam label`` and an MLflow store written by ``directsam evaluate``.

Each notebook reads its parameters from environment variables (first code cell), so the
kernel, which inherits this process's environment, is pointed at the fixtures below.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"

pytestmark = pytest.mark.slow


def run_notebook(name: str) -> str:
    """Execute ``notebooks/<name>`` in a fresh kernel; return all its stream output."""
    import nbformat
    from nbclient import NotebookClient

    book = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(
        book,
        timeout=240,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    ).execute()
    texts = []
    for cell in book.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                texts.append(out["text"])
    return "".join(texts)


def test_notebooks_define_nothing_and_clear_outputs():
    """Notebooks import from directsam and carry no outputs or pipeline definitions."""
    import nbformat

    books = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert [b.name for b in books] == [
        "compare_experiments.ipynb",
        "inspect_shards.ipynb",
        "quickstart.ipynb",
    ]
    for path in books:
        book = nbformat.read(path, as_version=4)
        nbformat.validate(book)
        code = "\n".join(c.source for c in book.cells if c.cell_type == "code")
        assert "from directsam" in code, path.name
        assert not re.search(r"^\s*(def|class) ", code, flags=re.M), path.name
        assert all(not c.get("outputs") for c in book.cells if c.cell_type == "code"), path.name


def test_quickstart_counts_the_same_tokens_as_the_library(sample_root, monkeypatch):
    from directsam.data.decode import decode_image
    from directsam.inference import BoundaryPredictor, probs_to_tokens

    image_path = sorted(sample_root.glob("sa_*/*.jpg"))[0]
    monkeypatch.setenv("DIRECTSAM_CHECKPOINT", "scratch:b0")
    monkeypatch.setenv("DIRECTSAM_IMAGE", str(image_path))
    monkeypatch.setenv("DIRECTSAM_RESOLUTION", "64")
    monkeypatch.setenv("DIRECTSAM_THRESHOLD", "0.5")
    text = run_notebook("quickstart.ipynb")

    # The reference: the same predictor and tokenizer, called directly.
    image = decode_image(image_path.read_bytes())
    probs = BoundaryPredictor("scratch:b0", device="cpu", resolution=64).predict(
        [image], out_size=image.shape[:2]
    )[0]
    _, expected = probs_to_tokens(probs, 0.5)
    assert f"image {image.shape}" in text
    match = re.search(r"^(\d+) tokens; (\d+) after denoising$", text, flags=re.M)
    assert match, text
    assert int(match.group(1)) == expected
    assert 1 <= int(match.group(2)) <= min(expected, 128)


@pytest.fixture(scope="module")
def labeled(ray_local, sample_root, tmp_path_factory):
    """Shards of 4 sample images (scratch:tiny, 64 px) and an MLflow store with a labeling run
    and a 2-threshold evaluation of the same checkpoint."""
    from directsam.cli.evaluate import evaluate_main
    from directsam.cli.label import main as label_main

    root = tmp_path_factory.mktemp("ops_nb")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    code = label_main([
        "--config", str(REPO / "configs/smoke/pseudo_label.yaml"), "--input", str(sample_root),
        "--output", str(root / "labels"), "--num-samples", "4", "--dataset", "nbtest",
        "--set", "tracking.enabled=true", "--tracking-uri", uri,
    ])  # fmt: skip
    assert code == 0
    code = evaluate_main([
        "--checkpoint", "scratch:tiny", "--source", "sa1b", "--input", str(sample_root),
        "--dataset", "nbtest", "--split", "all", "--num-samples", "4", "--resolution", "64",
        "--thresholds", "0.3,0.5", "--batch-size", "4", "--num-panels", "0",
        "--cache-dir", str(root / "cache"), "--output", str(root / "eval"),
        "--tracking-uri", uri,
    ])  # fmt: skip
    assert code == 0
    return root, uri


def test_inspect_shards_reports_the_generation(labeled, monkeypatch):
    from directsam.data.sources.shards.counts import merged_label_counts

    root, _ = labeled
    monkeypatch.setenv("DIRECTSAM_SHARDS", str(root / "labels"))
    monkeypatch.setenv("DIRECTSAM_NUM_SHOW", "2")
    text = run_notebook("inspect_shards.ipynb")
    counts = merged_label_counts(str(root / "labels"))
    assert counts == {"num_rows": 4, "num_good": 4, "num_failed": 0}
    assert "complete" in text and "INCOMPLETE" not in text
    assert "4 rows in 1 shard files" in text
    assert "4 good, 0 failed" in text
    # One coverage line per good row, merged coverage >= both of its parts.
    lines = re.findall(r"^\s*(sa_\d+)\s+([\d.]+)%\s+([\d.]+)%\s+([\d.]+)%\s+([\d.]+)%$", text, re.M)
    assert len(lines) == 4
    for _, human, pseudo, merged, _overlap in lines:
        assert float(merged) >= max(float(human), float(pseudo)) - 0.05


def test_compare_experiments_lists_runs_and_curves(labeled, monkeypatch):
    from directsam.evaluation.compare import load_trial_rows

    _, uri = labeled
    monkeypatch.setenv("DIRECTSAM_TRACKING_URI", uri)
    text = run_notebook("compare_experiments.ipynb")
    trials = load_trial_rows("directsam-eval", uri)
    assert sorted(r["threshold"] for r in trials) == [0.3, 0.5]
    assert re.search(r"^directsam-label: 1 runs$", text, re.M), text
    # 2 threshold runs + 1 summary run.
    assert re.search(r"^directsam-eval: 3 runs$", text, re.M), text
    assert "scratch:tiny" in text
    recalls = [f"{r['mean_recall']:.4f}" for r in trials]
    assert all(np.isfinite(r["mean_num_tokens"]) for r in trials)
    assert any(value in text for value in recalls), (recalls, text)
