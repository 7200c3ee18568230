"""The demo's sample parts and closing summary (the demo itself runs in `bash scripts/demo.sh`;
its learning is covered by tests/training/test_learning.py)."""

from __future__ import annotations

from pathlib import Path

from directsam.demo import DemoResult, _id_range, format_summary, make_demo_sample


def test_sample_parts_are_disjoint_real_sa1b_datasets(tmp_path):
    sizes = {"train": 3, "unlabeled": 2, "val": 2}
    lines: list[str] = []
    ids = make_demo_sample(tmp_path, sizes, log=lines.append)
    # Ids as the sa1b listing reads them (sorted as strings), one range per part.
    assert ids == {
        "train": ["sa_1", "sa_2", "sa_3"],
        "unlabeled": ["sa_4", "sa_5"],
        "val": ["sa_6", "sa_7"],
    }
    assert [line.rsplit("(", 1)[1] for line in lines] == [
        "sa_1..sa_3)",
        "sa_4..sa_5)",
        "sa_6..sa_7)",
    ]
    # Different seeds per part: no scene repeats, even at the same position in its part.
    first = {part: (tmp_path / part / "sa_000000" / f"sa_{ids[part][0][3:]}.jpg").read_bytes()
             for part in sizes}  # fmt: skip
    assert len(set(first.values())) == 3
    assert {p.name for p in (tmp_path / "val" / "tars").iterdir()} == {"sa_000000.tar"}


def test_id_range_and_summary():
    assert _id_range(["sa_193", "sa_200", "sa_194"]) == "sa_193, sa_194, sa_200"
    assert _id_range([f"sa_{n}" for n in (10, 9, 11)]) == "sa_9..sa_11"
    result = DemoResult(
        output=Path("/o"), tracking_uri="sqlite:////o/mlflow.db", sample=Path("/o/s")
    )
    result.val_ids = ["sa_7", "sa_6"]
    result.compare_table = "dataset demo-val | ...\nthreshold ..."
    result.timings = {"stage 1: pretrain": 61.24, "photo": 5.0}
    text = format_summary(result, 200.0)
    assert "DirectSAM demo finished in 3.3 min (200 s)." in text
    assert "Held-out images scored (never read by stages 1-3): sa_6..sa_7" in text
    assert "dataset demo-val | ...\nthreshold ..." in text
    assert "stage 1: pretrain 61, photo 5" in text
