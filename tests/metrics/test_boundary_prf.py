"""boundary_prf against a brute-force nearest-pixel search, plus the edge-case conventions."""

from __future__ import annotations

import numpy as np
import pytest

from directsam.metrics import boundary_prf
from directsam.metrics.boundary_prf import disk_kernel

from .oracle import oracle_boundary_prf


@pytest.mark.parametrize("tolerance", [0, 1, 1.5, 2, 3, 3.7, 5])
def test_equals_brute_force(tolerance: float) -> None:
    rng = np.random.default_rng(int(tolerance * 10))
    for _ in range(60):
        h, w = (int(v) for v in rng.integers(1, 40, size=2))
        gt = rng.random((h, w)) < rng.uniform(0, 0.2)
        pred = rng.random((h, w)) < rng.uniform(0, 0.2)
        assert boundary_prf(gt, pred, tolerance) == pytest.approx(
            oracle_boundary_prf(gt, pred, tolerance), abs=1e-12
        )


def test_known_values() -> None:
    gt = np.zeros((10, 10), dtype=bool)
    gt[5, :] = True
    pred = np.zeros_like(gt)
    pred[7, :5] = True  # 2 px away from the GT row, covering half of it
    assert boundary_prf(gt, pred, 1) == (0.0, 0.0, 0.0)
    precision, recall, f1 = boundary_prf(gt, pred, 2)
    assert (precision, recall) == (1.0, 0.5)
    assert f1 == pytest.approx(2 / 3)
    # diagonal distance sqrt(2): matched at tolerance 1.5, not at 1
    a = np.zeros((5, 5), dtype=bool)
    b = np.zeros((5, 5), dtype=bool)
    a[1, 1] = b[2, 2] = True
    assert boundary_prf(a, b, 1) == (0.0, 0.0, 0.0)
    assert boundary_prf(a, b, 1.5) == (1.0, 1.0, 1.0)


def test_empty_conventions() -> None:
    empty = np.zeros((6, 6), dtype=bool)
    some = empty.copy()
    some[2, 3] = True
    assert boundary_prf(empty, empty, 2) == (1.0, 1.0, 1.0)
    assert boundary_prf(some, empty, 2) == (0.0, 0.0, 0.0)
    assert boundary_prf(empty, some, 2) == (0.0, 0.0, 0.0)
    assert boundary_prf(some, some, 0) == (1.0, 1.0, 1.0)


def test_disk_kernel() -> None:
    np.testing.assert_array_equal(disk_kernel(0), [[1]])
    np.testing.assert_array_equal(disk_kernel(1), [[0, 1, 0], [1, 1, 1], [0, 1, 0]])
    np.testing.assert_array_equal(disk_kernel(1.5), np.ones((3, 3)))
    assert disk_kernel(5).sum() == 81  # lattice points with y^2 + x^2 <= 25


def test_rejects_bad_arguments() -> None:
    a = np.zeros((4, 4), dtype=bool)
    with pytest.raises(ValueError, match="same shape"):
        boundary_prf(a, np.zeros((4, 5), dtype=bool), 1)
    for bad in (-1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="tolerance"):
            boundary_prf(a, a, bad)
