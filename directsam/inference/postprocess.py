"""Boundary probabilities -> thresholded bits packed on the device -> COCO RLE on the host.

The labeling actor thresholds and packs on the model's device, so 1 bit per pixel crosses to
the host (405 KB for an 1800 px map instead of 13 MB of float32). The bits are packed in
column-major (Fortran) order, the order COCO RLE runs in: the host unpacks them into an array
whose transpose is already Fortran-contiguous and hands it to pycocotools without the transpose
copy that a row-major mask costs. Measured on one CPU core (benchmarks/cpu_budget.py,
benchmarks/results/cpu_budget.md), per 1800 x 1800 map: 1.6 CPU-ms here against 6.2 for
unpacking row-major bits and encoding through :func:`directsam.data.rle.mask_to_rle`, with
byte-identical counts; numpy alone needs 2/3 of pycocotools' time just to find the runs, so
pycocotools encodes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import torch


def packed_size(height: int, width: int | None = None) -> int:
    """Bytes of one packed ``height x width`` map (square when ``width`` is None)."""
    width = height if width is None else width
    return -(-height * width // 8)


def pack_bits(mask: torch.Tensor) -> torch.Tensor:
    """Pack a bool tensor ``(B, ...)`` to uint8 ``(B, ceil(n/8))`` on its device.

    Each row is flattened in C order and packed as ``np.packbits`` does (most significant bit
    first, zero padded), so ``np.unpackbits`` inverts it.
    """
    import torch
    import torch.nn.functional as F

    b = mask.shape[0]
    flat = mask.reshape(b, -1).to(torch.uint8)
    pad = (-flat.shape[1]) % 8
    if pad:
        flat = F.pad(flat, (0, pad))
    weights = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8, device=flat.device)
    return (flat.view(b, -1, 8) * weights).sum(dim=-1, dtype=torch.uint8)


def pack_boundary(probs: torch.Tensor, threshold: float) -> torch.Tensor:
    """Threshold ``(B, H, W)`` probabilities and pack the boundary column-major, on the device.

    Args:
        probs: float ``(B, H, W)`` boundary probabilities (any device).
        threshold: boundary pixels are ``probs >= threshold``.

    Returns:
        uint8 ``(B, ceil(H*W/8))`` on the same device: the bits of ``mask.T`` in C order, i.e.
        of ``mask`` in column-major order (see :func:`unpack_boundary`).
    """
    return pack_bits((probs >= threshold).transpose(-1, -2).contiguous())


def _unpacked_columns(packed: npt.ArrayLike, height: int, width: int) -> np.ndarray:
    """uint8 0/1 ``(W, H)``: row j is column j of the mask."""
    bits = np.unpackbits(np.asarray(packed, dtype=np.uint8), count=height * width)
    return bits.reshape(width, height)


def unpack_boundary(packed: npt.ArrayLike, height: int, width: int) -> npt.NDArray[np.bool_]:
    """Inverse of :func:`pack_boundary` for one map: uint8 ``(ceil(H*W/8),)`` -> bool ``(H, W)``.

    The result is a Fortran-ordered view (no copy of the bits).
    """
    return _unpacked_columns(packed, height, width).T.view(bool)


def boundary_rle_counts(packed: npt.ArrayLike, height: int, width: int) -> str:
    """COCO compressed RLE counts of one packed boundary (see :func:`pack_boundary`).

    Byte-identical to ``mask_to_rle(unpack_boundary(packed, h, w))["counts"]``.
    """
    from pycocotools import mask as mask_utils

    if height * width == 0:
        return ""
    columns = _unpacked_columns(packed, height, width)
    return mask_utils.encode(columns.T)["counts"].decode("ascii")  # .T is Fortran-contiguous
