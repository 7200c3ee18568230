"""Small helpers shared by the Ray labeling tests: a CPU scratch-model config, shard readers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from directsam.data.rle import rle_to_mask
from directsam.labeling.config import LabelConfig

R = 64


def label_config(
    source: str, input: Path | str, output: Path | str, **source_kw: Any
) -> LabelConfig:
    """A fast CPU job: scratch:tiny at 64 px, blocks of 4 rows, no MLflow."""
    cfg = LabelConfig(output=str(output), thickness=3)
    cfg.source.type, cfg.source.input = source, str(input)
    for key, value in source_kw.items():
        setattr(cfg.source, key, value)
    cfg.model.checkpoint, cfg.model.resolution = "scratch:tiny", R
    cfg.model.device, cfg.model.dtype = "cpu", "fp32"
    cfg.compute.batch_size = cfg.compute.decode_batch_size = cfg.compute.rows_per_shard = 4
    cfg.compute.progress_interval_s = 1000.0
    cfg.tracking.enabled = False
    return cfg


def read_generation(generation: str | Path) -> dict[str, dict[str, Any]]:
    """image_id -> row over every part file of a generation (asserting ids are unique)."""
    rows: dict[str, dict[str, Any]] = {}
    for part in sorted(Path(generation).glob("part-*.parquet")):
        for row in pq.read_table(part).to_pylist():
            assert row["image_id"] not in rows, f"duplicate row {row['image_id']}"
            rows[row["image_id"]] = row
    return rows


def mask(rle: dict[str, Any] | None) -> np.ndarray | None:
    return None if rle is None else rle_to_mask(rle)


def assert_good_rows_valid(rows: dict[str, dict[str, Any]], with_human: bool = True) -> None:
    """Good rows: RLEs decode to R x R; failed rows: labels null."""
    for row in rows.values():
        if row["error"] is None:
            assert mask(row["pseudo_boundary"]).shape == (R, R)
            if with_human:
                assert mask(row["human_boundary"]).shape == (R, R)
            else:
                assert row["human_boundary"] is None
            assert row["resolution"] == R and row["height"] > 0
        else:
            assert row["pseudo_boundary"] is None and row["human_boundary"] is None
