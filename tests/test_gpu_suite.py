"""benchmarks/gpu_suite.py: the one-call GPU suite, exercised on CPU (runner, sample, dry run)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("gpu_suite", ROOT / "benchmarks" / "gpu_suite.py")
gpu_suite = importlib.util.module_from_spec(_spec)
sys.modules["gpu_suite"] = gpu_suite  # dataclasses and process pools look the module up
_spec.loader.exec_module(gpu_suite)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def test_timeout_ends_the_whole_process_session(tmp_path):
    code = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    t0 = time.perf_counter()
    run = gpu_suite.run_command([sys.executable, "-c", code], 3.0, tmp_path / "logs")
    assert run["timed_out"] and time.perf_counter() - t0 < 30
    child = int(run["stdout"].split()[0])
    assert not _alive(child)


def test_failures_budget_and_figures_are_recorded_per_item(tmp_path):
    def item(name, code, min_s=0.0, figures=lambda r: {"x": r["x"]}):
        return gpu_suite.Item(name, name, [sys.executable, "-c", code], 20.0, min_s, figures)

    plan = [
        item("fails", "import sys; print('boom', file=sys.stderr); sys.exit(3)"),
        item("ok", "import json; print('noise'); print(json.dumps({'x': 1.5}))"),
        item("no_json", "print('nothing')"),
        item("wrong_keys", "print('{\"y\": 2}')"),
        item("too_big", "print('{\"x\": 1}')", min_s=10_000),
    ]
    args = argparse.Namespace(
        dry_run=True, compile=False, budget_s=60.0, unique_images=2,
        output=str(tmp_path / "r.json"), image_size=(96, 128),
    )  # fmt: skip
    suite = gpu_suite.Suite(args, plan, tmp_path / "work")
    for i, it in enumerate(plan):
        suite.run_item(i, it)
    suite.write()
    items = {i["name"]: i for i in json.loads((tmp_path / "r.json").read_text())["items"]}
    assert items["fails"]["status"] == "failed" and "exit code 3" in items["fails"]["skip_reason"]
    assert "boom" in items["fails"]["skip_reason"]
    assert items["ok"]["status"] == "ok" and items["ok"]["figures"] == {"x": 1.5}
    assert items["no_json"]["status"] == "failed" and "no JSON" in items["no_json"]["skip_reason"]
    assert items["wrong_keys"]["status"] == "failed"
    assert "lacks 'x'" in items["wrong_keys"]["skip_reason"]
    assert items["too_big"]["status"] == "skipped"
    assert items["too_big"]["skip_reason"].startswith("budget:")
    assert "wall_s" not in items["too_big"]  # never started


def test_linked_sample_lists_as_consecutive_sa1b_ids(tmp_path):
    from directsam.data.sources import SourceSpec, list_source

    pool = gpu_suite.make_pool(tmp_path / "pool", 2, 40, 56, processes=2)
    root = gpu_suite.link_sample(pool, tmp_path / "sample", 5, per_folder=2)
    items = list_source(SourceSpec("sa1b", str(root), dataset="bench"))
    assert sorted(i.image_id for i in items) == [f"sa_{n}" for n in range(1, 6)]
    for n in range(1, 6):
        jpg = next(root.glob(f"sa_*/sa_{n}.jpg"))
        assert jpg.read_bytes() == pool[(n - 1) % 2].read_bytes()
        doc = json.loads(jpg.with_suffix(".json").read_text())
        assert doc["image"]["image_id"] == n and doc["image"]["file_name"] == f"sa_{n}.jpg"
        assert doc["annotations"]  # the masks travel with the image
    assert pool[0].read_bytes() != pool[1].read_bytes()


@pytest.mark.slow
def test_dry_run_reports_every_planned_item(tmp_path):
    out = tmp_path / "dry.json"
    budget = 45.0
    t0 = time.perf_counter()
    gpu_suite.main(["--dry-run", "--budget-s", str(budget), "--output", str(out)])
    wall = time.perf_counter() - t0
    report = json.loads(out.read_text())
    planned = [
        "environment", "model_b0_1024_eager", "model_b5_1800_eager", "decode_gpu",
        "labeling_b0_1024_gpu_decode", "labeling_b0_1024", "labeling_b5_1800_gpu_decode",
        "labeling_b5_1800", "train_b0_1024", "decode_cpu", "cpu_budget",
    ]  # fmt: skip
    assert [i["name"] for i in report["items"]] == planned
    for item in report["items"]:
        if item["status"] == "ok":
            assert item["figures"], item
        else:
            assert item["status"] in ("failed", "timeout", "skipped")
            assert item["skip_reason"], item
    by = {i["name"]: i for i in report["items"]}
    assert by["environment"]["status"] == "ok"
    assert by["environment"]["figures"]["cpu_count"] == os.cpu_count()
    assert by["model_b0_1024_eager"]["status"] == "ok"
    assert by["model_b0_1024_eager"]["figures"]["model_img_per_s"] > 0
    assert "--resolution 64" in by["model_b0_1024_eager"]["command"]
    # The budget holds: the last running item is stopped at the deadline (+ its shutdown).
    assert wall < budget + 30
    assert report["summary"]["statuses"] == {i["name"]: i["status"] for i in report["items"]}
