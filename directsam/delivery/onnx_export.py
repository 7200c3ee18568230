"""Checkpoint spec -> ONNX graph (dynamic batch axis) + an onnxruntime parity check.

The graph takes ``pixel_values`` float32 ``(B, 3, R, R)`` (normalised as
:func:`directsam.inference.preprocess_images` does) and returns ``logits`` ``(B, 1, R/4, R/4)``
and ``probs`` ``(B, R, R)`` (bilinear upsample + sigmoid, as ``BoundaryPredictor``). ``R`` is
fixed at export (the checkpoint's resolution); ``B`` is dynamic. The exporter is torch's
TorchScript-based one (``dynamo=False``): the dynamo exporter needs ``onnxscript``.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ONNX_FILE = "model.onnx"
# float32 CPU parity between PyTorch and onnxruntime: |probs diff| and |logits diff| bounds.
PROBS_ATOL = 1e-4
LOGITS_ATOL = 1e-3


def _wrapper(model: Any) -> Any:
    import torch
    import torch.nn.functional as F

    class BoundaryGraph(torch.nn.Module):
        def __init__(self, inner: Any):
            super().__init__()
            self.inner = inner

        def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            logits = self.inner(pixel_values=pixel_values).logits
            size = pixel_values.shape[-2:]
            up = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
            return logits, torch.sigmoid(up[:, 0])

    # eval() on the wrapper too: export restores the wrapper's mode recursively afterwards.
    return BoundaryGraph(model).eval()


def export_onnx(
    checkpoint: str,
    output: str | os.PathLike[str],
    resolution: int | None = None,
    opset: int = 17,
    check: bool = True,
    check_batches: tuple[int, ...] = (1, 3),
    seed: int = 0,
    allow_pickle: bool = False,
) -> dict[str, Any]:
    """Export ``checkpoint`` to ``<output>/model.onnx`` and check it against PyTorch.

    Args:
        checkpoint: any checkpoint spec.
        output: destination folder.
        resolution: input side ``R`` (default the checkpoint's, else 1024).
        opset: ONNX opset.
        check: run onnxruntime (CPU) and PyTorch on seeded random pixels for each batch size
            in ``check_batches`` and compare (tolerances ``PROBS_ATOL``, ``LOGITS_ATOL``).
        seed: RNG seed of the parity inputs.

    Returns:
        The report (also written to ``<output>/onnx_export.json``): file, resolution, opset,
        and per checked batch size the max abs differences.

    Raises:
        AssertionError: parity beyond the tolerances (the file is kept for inspection).
    """
    import torch

    from directsam.model.build import load_model
    from directsam.model.spec import DEFAULT_RESOLUTION, checkpoint_sha, read_checkpoint_meta

    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    if resolution is None:
        resolution = int(read_checkpoint_meta(checkpoint).get("resolution") or DEFAULT_RESOLUTION)
    model = load_model(checkpoint, allow_pickle=allow_pickle)
    graph = _wrapper(model)
    path = out / ONNX_FILE
    example = torch.zeros(2, 3, resolution, resolution)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings and the exporter's deprecation notice
        torch.onnx.export(
            graph,
            (example,),
            str(path),
            input_names=["pixel_values"],
            output_names=["logits", "probs"],
            dynamic_axes={
                "pixel_values": {0: "batch"},
                "logits": {0: "batch"},
                "probs": {0: "batch"},
            },
            opset_version=opset,
            dynamo=False,
        )
    report: dict[str, Any] = {
        "file": ONNX_FILE,
        "checkpoint": checkpoint,
        "checkpoint_sha": checkpoint_sha(checkpoint, model),
        "resolution": resolution,
        "opset": opset,
        "inputs": {"pixel_values": ["batch", 3, resolution, resolution]},
        "outputs": {"logits": ["batch", 1, "ceil(R/4)", "ceil(R/4)"], "probs": ["batch", "R", "R"]},
        "tolerance": {"probs_atol": PROBS_ATOL, "logits_atol": LOGITS_ATOL},
    }
    if check:
        report["parity"] = onnx_parity(graph, path, resolution, check_batches, seed)
    (out / "onnx_export.json").write_text(json.dumps(report, indent=2) + "\n")
    if check:
        for row in report["parity"]:
            assert row["probs_max_abs"] <= PROBS_ATOL and row["logits_max_abs"] <= LOGITS_ATOL, (
                f"ONNX parity failed at batch {row['batch']}: {row}"
            )
    return report


def onnx_parity(
    graph: Any, path: str | Path, resolution: int, batches: tuple[int, ...], seed: int = 0
) -> list[dict[str, Any]]:
    """Max abs differences between PyTorch ``graph`` and onnxruntime on random pixels."""
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    rows = []
    for batch in batches:
        x = rng.standard_normal((batch, 3, resolution, resolution)).astype(np.float32)
        logits, probs = session.run(["logits", "probs"], {"pixel_values": x})
        with torch.inference_mode():
            ref_logits, ref_probs = (t.numpy() for t in graph(torch.from_numpy(x)))
        rows.append(
            {
                "batch": batch,
                "probs_max_abs": float(np.abs(probs - ref_probs).max()),
                "logits_max_abs": float(np.abs(logits - ref_logits).max()),
                "shapes": [list(logits.shape), list(probs.shape)],
            }
        )
    return rows
