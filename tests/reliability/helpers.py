"""Shared pieces of the fault-injection suite: job configs, shard readers, a plain reference run.

The reference labels are computed by calling the three pipeline stages (``prepare_rows`` ->
``LabelPredictor`` -> ``encode_pseudo``) directly on the whole listing in one process, with no
Ray, no blocks and no writer: whatever a faulty run writes must equal this row for row.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from directsam.labeling.config import LabelConfig

CHECKPOINT = "scratch:b0"


def label_config(
    input: Path | str,
    output: Path | str,
    resolution: int,
    *,
    source: str = "sa1b",
    **source_kw: Any,
) -> LabelConfig:
    """A CPU labeling job on ``scratch:b0`` in blocks of 4 rows, no MLflow."""
    cfg = LabelConfig(output=str(output), thickness=3)
    cfg.source.type, cfg.source.input = source, str(input)
    for key, value in source_kw.items():
        setattr(cfg.source, key, value)
    cfg.model.checkpoint, cfg.model.resolution = CHECKPOINT, resolution
    cfg.model.device, cfg.model.dtype = "cpu", "fp32"
    cfg.compute.batch_size = cfg.compute.decode_batch_size = cfg.compute.rows_per_shard = 4
    cfg.compute.progress_interval_s = 1000.0
    cfg.tracking.enabled = False
    return cfg


def read_rows(generation: str | Path) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """(image_id -> row, list of every image_id read, duplicates included) over the part files."""
    rows: dict[str, dict[str, Any]] = {}
    seen: list[str] = []
    for part in sorted(Path(generation).glob("part-*.parquet")):
        for row in pq.read_table(part).to_pylist():
            seen.append(row["image_id"])
            rows[row["image_id"]] = row
    return rows, seen


def code_of(error: str | None) -> str | None:
    return None if error is None else error.split(":", 1)[0]


def reference_rows(cfg: LabelConfig) -> dict[str, dict[str, Any]]:
    """image_id -> {error, pseudo_counts, human_counts} from the stages run directly, no Ray."""
    from directsam.data.sources import SourceSpec, list_source
    from directsam.labeling.stages import LabelPredictor, encode_pseudo, prepare_rows

    src = cfg.source
    items = list_source(SourceSpec(src.type, src.input, dataset=src.dataset or None, mode=src.mode))
    rows = [dict(i.to_row(), block=0) for i in items]
    batch = {k: np.array([r[k] for r in rows], dtype=object) for k in rows[0]}
    prepared = prepare_rows(batch, cfg.model.resolution, cfg.thickness)
    predictor = LabelPredictor(
        cfg.model.checkpoint, cfg.model.resolution, cfg.model.threshold, device="cpu", dtype="fp32"
    )
    out = encode_pseudo(predictor(prepared), cfg.model.resolution)
    ref = {}
    for i, image_id in enumerate(out["image_id"]):
        err = out["error"][i]
        ref[str(image_id)] = {
            "error": err if isinstance(err, str) and err else None,
            "pseudo_counts": out["pseudo_counts"][i],
            "human_counts": out["human_counts"][i],
        }
    return ref


def assert_rows_equal_reference(
    rows: dict[str, dict[str, Any]], ref: dict[str, dict[str, Any]]
) -> None:
    """Same ids, same errors, same pseudo and human boundaries as the plain reference."""
    assert sorted(rows) == sorted(ref)
    for image_id, want in ref.items():
        row = rows[image_id]
        assert row["error"] == want["error"], image_id
        if want["error"] is None:
            assert row["pseudo_boundary"]["counts"] == want["pseudo_counts"], image_id
            assert row["human_boundary"]["counts"] == want["human_counts"], image_id


def wait_for(predicate: Callable[[], Any], timeout_s: float, interval_s: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned) or time runs out (None)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    return None
