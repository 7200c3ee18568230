"""The metric table: DESIGN.md's MLflow names, directions, and the one aggregation function."""

from __future__ import annotations

import math

import numpy as np
import pytest

from directsam.metrics import aggregate, effective_contour_recall, table

# DESIGN.md Conventions (the MLflow contract) plus the two evaluation extras, in results.csv order.
EVALUATION_NAMES = (
    "mean_recall",
    "mean_num_tokens",
    "num_images",
    "num_skipped",
    "num_failed",
    "mean_precision",
    "mean_boundary_recall",
    "mean_f1",
)


def test_names_directions_and_validation_names_are_the_contract() -> None:
    assert table.NAMES == EVALUATION_NAMES
    assert list(table.BY_NAME) == list(EVALUATION_NAMES)
    assert (table.OBJECTIVE.name, table.OBJECTIVE.mode) == ("mean_recall", "max")
    modes = {m.name: m.mode for m in table.METRICS}
    assert modes == {
        "mean_recall": "max",
        "mean_num_tokens": "min",
        "num_images": None,
        "num_skipped": None,
        "num_failed": None,
        "mean_precision": "max",
        "mean_boundary_recall": "max",
        "mean_f1": "max",
    }
    assert [table.validation_name(m) for m in table.VALIDATION_LOGGED] == [
        "val_mean_recall",
        "val_mean_num_tokens",
    ]
    counts = {m.per_image for m in table.METRICS if m.aggregation == "count"}
    assert counts == {table.SCORED, table.SKIPPED, table.FAILED}
    assert all(m.description for m in table.METRICS)


def test_aggregate_rows_by_hand() -> None:
    scored = [
        {"status": "scored", "recall": 0.5, "num_tokens": 10, "precision": 1.0,
         "boundary_recall": 0.25, "f1": 0.4},
        {"status": "scored", "recall": 1.0, "num_tokens": 21, "precision": 0.5,
         "boundary_recall": 0.75, "f1": 0.6},
    ]  # fmt: skip
    rows = [
        *scored,
        {"status": "skipped"},
        {"status": "failed", "error": "x"},
        {"status": "skipped"},
    ]
    out = aggregate(rows, table.METRICS)
    assert list(out) == list(EVALUATION_NAMES)
    assert out == {
        "mean_recall": 0.75,
        "mean_num_tokens": 15.5,
        "num_images": 2.0,
        "num_skipped": 2.0,
        "num_failed": 1.0,
        "mean_precision": 0.75,
        "mean_boundary_recall": 0.5,
        "mean_f1": 0.5,
    }
    assert all(type(v) is float for v in out.values())


def test_aggregate_with_nothing_scored_gives_nan_means_and_counts() -> None:
    out = aggregate([{"status": "failed"}], table.METRICS)
    assert [k for k, v in out.items() if math.isnan(v)] == [
        m.name for m in table.METRICS if m.aggregation == "mean"
    ]
    assert (out["num_images"], out["num_skipped"], out["num_failed"]) == (0.0, 0.0, 1.0)
    assert aggregate([], table.METRICS)["num_images"] == 0.0


def test_tuple_form_is_the_row_form_of_effective_contour_recall() -> None:
    rng = np.random.default_rng(4)
    per_image = []
    for _ in range(12):
        gt = rng.random((40, 40)) < 0.1
        if rng.random() < 0.3:
            gt[:] = False  # skipped
        per_image.append(effective_contour_recall(gt, rng.random((40, 40)) < 0.3, 3))
    rows = [
        {"status": "skipped"} if r < 0 else {"status": "scored", "num_tokens": n, "recall": r}
        for n, r in per_image
    ]
    from_tuples = aggregate(per_image)
    assert list(from_tuples) == [m.name for m in table.CONTOUR_METRICS]
    assert from_tuples == aggregate(rows, table.CONTOUR_METRICS)
    scored = [(n, r) for n, r in per_image if r >= 0]
    assert from_tuples["mean_recall"] == float(np.mean([r for _, r in scored]))
    assert from_tuples["mean_num_tokens"] == float(np.mean([n for n, _ in scored]))
    assert from_tuples["num_skipped"] == len(per_image) - len(scored) > 0


def test_a_mean_needs_its_per_image_value() -> None:
    with pytest.raises(KeyError, match="precision"):
        aggregate([(3, 0.5)], table.METRICS)


# --------------------------------------------------------------------------- spelled once

PACKAGE = __import__("pathlib").Path(__file__).resolve().parents[2] / "directsam"
# The modules that report evaluation metrics; they must read names from the table. (Other
# modules use some of these words for other things: labeling's num_failed row count, the
# validation.num_images config field.) demo.py still prints two names itself (issue 13 owns it).
CONSUMERS = (
    "evaluation/evaluate.py",
    "evaluation/report.py",
    "evaluation/panels.py",
    "evaluation/sweep.py",
    "evaluation/compare.py",
    "cli/evaluate.py",
    "cli/compare.py",
    "training/validation.py",
    "training/loop.py",
    "delivery/hub_export.py",
    "metrics/__init__.py",
    "metrics/contour_recall.py",
    "metrics/boundary_prf.py",
)


def _code_strings(path):
    """String constants of a module's code (docstrings and attribute docstrings left out)."""
    import ast

    tree = ast.parse(path.read_text())
    docs = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs
    ]


def test_metric_names_are_spelled_only_in_the_table() -> None:
    import re

    words = [*table.NAMES, *(table.validation_name(m) for m in table.METRICS)]
    pattern = re.compile(r"(?<![A-Za-z0-9_])(" + "|".join(words) + r")(?![A-Za-z0-9_])")
    spelled = {
        rel: hits
        for rel in CONSUMERS
        if (hits := [s for s in _code_strings(PACKAGE / rel) if pattern.search(s)])
    }
    assert spelled == {}
    in_table = [s for s in _code_strings(PACKAGE / "metrics/table.py") if pattern.fullmatch(s)]
    assert sorted(in_table) == sorted(table.NAMES)  # each name once, in the table


def test_token_connectivity_is_named_once() -> None:
    import ast

    from directsam.inference.tokens import TOKEN_CONNECTIVITY
    from directsam.metrics import SKELETON_TOKEN_CONNECTIVITY

    # DESIGN.md Conventions: inference tokens 8-connected, the metric's skeleton tokens 4.
    assert (TOKEN_CONNECTIVITY, SKELETON_TOKEN_CONNECTIVITY) == (8, 4)
    literal = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            # connectivity=8, structure=np.ones((3, 3)), ...: a neighbourhood not read from a
            # named *_CONNECTIVITY constant
            if (
                isinstance(node, ast.keyword)
                and node.arg in ("connectivity", "structure")
                and "CONNECTIVITY" not in ast.unparse(node.value)
            ):
                literal.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert literal == []


def test_format_value_prints_missing_and_nan_as_a_dash() -> None:
    assert table.format_value(0.81234, 4) == "0.8123"
    assert table.format_value(12.25, 1, 6) == "  12.2"
    assert table.format_value(6, 0) == "6"
    assert table.format_value(None, 3, 5) == "    -"
    assert table.format_value(math.nan, 3) == "-"
