"""The training loss is HF's num_labels=1 BCE on upsampled logits; pinned to a plain reference."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from directsam.model import load_model
from directsam.training.loss import boundary_loss


def reference_loss(logits: torch.Tensor, labels: torch.Tensor, ignore: int = 255) -> torch.Tensor:
    """Plain BCE-with-logits on bilinearly upsampled logits, ignored pixels count as zero."""
    up = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=False)
    per_pixel = F.binary_cross_entropy_with_logits(up[:, 0], labels.float(), reduction="none")
    valid = (labels != ignore).float()
    return (per_pixel * valid).mean()


def test_boundary_loss_equals_reference_with_ignored_pixels():
    torch.manual_seed(0)
    model = load_model("scratch:tiny").train(False)
    pixels = torch.randn(2, 3, 64, 64)
    labels = (torch.rand(2, 64, 64) < 0.2).to(torch.uint8)
    labels[0, :8] = 255  # an ignored band
    loss, logits = boundary_loss(model, pixels, labels)
    assert logits.shape == (2, 1, 16, 16)
    assert loss.dtype == torch.float32 and loss.ndim == 0
    torch.testing.assert_close(loss, reference_loss(logits, labels), rtol=1e-6, atol=1e-7)


def test_loss_gradient_flows_and_falls_with_a_step():
    torch.manual_seed(0)
    model = load_model("scratch:tiny").train()
    pixels = torch.randn(2, 3, 64, 64)
    labels = (torch.rand(2, 64, 64) < 0.1).to(torch.uint8)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    first, _ = boundary_loss(model, pixels, labels)
    for _ in range(5):
        loss, _ = boundary_loss(model, pixels, labels)
        opt.zero_grad()
        loss.backward()
        assert model.decode_head.classifier.weight.grad.abs().sum() > 0
        opt.step()
    last, _ = boundary_loss(model, pixels, labels)
    assert last.item() < first.item()
