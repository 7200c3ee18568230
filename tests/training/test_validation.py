"""Training validation reads the metric table: ``val_`` + the table's names, its aggregation."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np

from directsam.metrics import aggregate, effective_contour_recall, table
from directsam.training.validation import LOGGED, probs_from_logits, summarize, validate_model


def test_names_are_val_plus_the_tables():
    assert LOGGED == ("val_mean_recall", "val_mean_num_tokens")  # DESIGN.md training metrics
    out = summarize([(10, 0.5), (-1, -1.0), (20, 1.0)])
    assert out == {
        "val_mean_recall": 0.75,
        "val_mean_num_tokens": 15.0,
        "val_num_images": 2.0,
        "val_num_skipped": 1.0,
    }
    assert list(out) == [table.validation_name(m) for m in table.CONTOUR_METRICS]
    assert set(LOGGED) <= set(out)
    empty = summarize([(-1, -1.0)])
    assert math.isnan(empty["val_mean_recall"]) and empty["val_num_skipped"] == 1.0


def test_validate_model_equals_the_metric_on_its_probabilities():
    import torch

    class Conv(torch.nn.Module):
        """A real (random) conv net with the SegFormer output contract: logits at 1/4 size."""

        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.conv = torch.nn.Conv2d(3, 1, 3, stride=4, padding=1)

        def forward(self, pixel_values: torch.Tensor) -> SimpleNamespace:
            return SimpleNamespace(logits=self.conv(pixel_values) * 20)

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 48, 48, 3), dtype=np.uint8)
    targets = np.zeros((5, 48, 48), np.uint8)
    targets[:, 12, :] = 1
    targets[:, :, 30] = 1
    targets[2] = 0  # empty GT: skipped
    batches = [
        {"image": images[:3], "target": targets[:3]},
        {"image": images[3:], "target": targets[3:]},
    ]
    model = Conv()
    out = validate_model(
        model, batches, device=torch.device("cpu"), autocast_dtype=None, threshold=0.5,
        tolerance=3, max_images=10,
    )  # fmt: skip

    from directsam.training.data import to_model_input

    with torch.no_grad():
        logits = model(to_model_input(torch.as_tensor(images))).logits
    probs = probs_from_logits(logits, 48).numpy()
    per_image = [effective_contour_recall(t == 1, p >= 0.5, 3) for p, t in zip(probs, targets)]
    expected = aggregate(per_image)
    assert out == {f"val_{k}": v for k, v in expected.items()}
    assert out["val_num_images"] == 4.0 and out["val_num_skipped"] == 1.0
