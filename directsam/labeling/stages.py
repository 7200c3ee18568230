"""The per-batch steps of the labeling pipeline (plain functions and one model-holding class).

    listing rows --prepare_rows (CPU tasks)--> decoded RGB at R + human boundary RLE
                 --LabelPredictor (GPU actors)--> thresholded boundary, bit-packed
                 --encode_pseudo (CPU tasks)--> pseudo boundary RLE (compact rows)

None of them needs Ray: each maps ``dict[str, np.ndarray]`` to ``dict[str, np.ndarray]`` and is
unit-tested on plain dicts. Outputs are compact on purpose (uint8 RGB into the GPU stage,
1 bit per pixel out of it, RLE strings after), so the object store never holds float maps.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import numpy.typing as npt

from directsam.data.targets import cell_text
from directsam.schema import ERROR, IMAGE_BYTES, IMAGE_ID, MODEL_FAILED, InputError

HUMAN_COUNTS = "human_counts"  # str | None: COCO counts of the human boundary at R x R
PSEUDO_COUNTS = "pseudo_counts"  # str | None: COCO counts of the pseudo boundary at R x R
PSEUDO_BITS = "pseudo_bits"  # uint8 (N, ceil(R*R/8)): np.packbits of the thresholded map
BLOCK = "block"  # str: key of the output block (shard) the row belongs to
BLOCK_INFO = "block_info"  # str | None: tar chunks' closing-row JSON (data.sources.tarstream)
# Columns every stage passes through unchanged (the driver groups rows into shards by them).
PASS_THROUGH = (BLOCK, BLOCK_INFO, "image_id", "source_uri", "dataset")


def packed_size(resolution: int) -> int:
    return -(-resolution * resolution // 8)


def pack_bits(mask: Any) -> Any:
    """Pack a bool torch tensor ``(B, R, R)`` to uint8 ``(B, ceil(R*R/8))`` on its device.

    Bit order is ``np.packbits``' (most significant bit first), so :func:`unpack_bits` is
    ``np.unpackbits``. Packing on the GPU makes the device-to-host copy 8x smaller.
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


def unpack_bits(packed: npt.NDArray[np.uint8], resolution: int) -> npt.NDArray[np.bool_]:
    """Inverse of :func:`pack_bits` for one row: uint8 (ceil(R*R/8),) -> bool (R, R)."""
    bits = np.unpackbits(np.asarray(packed, dtype=np.uint8), count=resolution * resolution)
    return bits.reshape(resolution, resolution).astype(bool)


def prepare_rows(
    batch: dict[str, np.ndarray], resolution: int, thickness: int, store: Any = None
) -> dict[str, np.ndarray]:
    """CPU stage: read bytes (listed rows), decode + resize to R, human boundary -> RLE counts.

    Args:
        batch: listing rows (``SourceItem.to_row()`` + ``block``), or source rows that already
            hold ``image_bytes`` (tar streams, + ``block`` / ``block_info``).
        resolution: model input side R.
        thickness: human boundary band thickness at R.
        store: the job's S3 settings (``StoreOptions``) for reading listed rows.

    Returns:
        ``image`` uint8 (N, R, R, 3), ``height``/``width`` int32, ``human_counts`` (str, or
        None when the source has no annotation or the row failed), ``error``, and the
        pass-through columns ``block, block_info, image_id, source_uri, dataset``.
    """
    from directsam.data.rle import mask_to_rle
    from directsam.data.sources import read_items
    from directsam.data.targets import HAS_TARGET, TARGET, decode_rows

    rows = batch if IMAGE_BYTES in batch else read_items(batch, store)
    decoded = decode_rows(rows, resolution, thickness, keep_image=True)
    n = len(decoded[IMAGE_ID])
    human = np.empty(n, dtype=object)
    for i in range(n):
        if decoded[HAS_TARGET][i] and not cell_text(decoded[ERROR][i]):
            human[i] = mask_to_rle(decoded[TARGET][i])["counts"]
    keep = (*PASS_THROUGH, "image", "height", "width", "error")
    out = {k: decoded[k] for k in keep if k in decoded}
    out[HUMAN_COUNTS] = human
    return out


def encode_pseudo(batch: dict[str, np.ndarray], resolution: int) -> dict[str, np.ndarray]:
    """CPU stage: bit-packed pseudo boundaries -> COCO RLE counts (None for failed rows)."""
    from directsam.data.rle import mask_to_rle

    n = len(batch[IMAGE_ID])
    counts = np.empty(n, dtype=object)
    for i in range(n):
        if not cell_text(batch[ERROR][i]):
            counts[i] = mask_to_rle(unpack_bits(batch[PSEUDO_BITS][i], resolution))["counts"]
    out = {k: v for k, v in batch.items() if k != PSEUDO_BITS}
    out[PSEUDO_COUNTS] = counts
    return out


class LabelPredictor:
    """Model stage (one instance per Ray actor): uint8 images -> thresholded, packed boundaries.

    The model is loaded once in ``__init__``. Each call normalises on the device, runs the
    forward (bf16/fp16 autocast on CUDA), thresholds at ``threshold`` on the device and packs
    8 pixels per byte. Rows that already failed are skipped. If a batch forward raises, rows
    are retried one at a time, and a row that still fails gets ``model_failed``.
    """

    def __init__(
        self,
        checkpoint: str,
        resolution: int,
        threshold: float,
        device: str = "auto",
        dtype: str = "auto",
        compile: bool = False,
        channels_last: bool = True,
        allow_pickle: bool = False,
    ):
        from directsam.inference.predictor import BoundaryPredictor

        self.predictor = BoundaryPredictor(
            checkpoint,
            device=device,
            dtype=dtype,
            resolution=resolution,
            compile=compile,
            channels_last=channels_last,
            allow_pickle=allow_pickle,
        )
        self.resolution = int(resolution)
        self.threshold = float(threshold)

    def _forward(self, images: np.ndarray) -> np.ndarray:
        import torch

        from directsam.inference.preprocess import preprocess_images

        device = self.predictor.device
        with warnings.catch_warnings():
            # Batches are read-only views of the object store; torch warns but only reads.
            warnings.simplefilter("ignore", UserWarning)
            pixels = torch.from_numpy(images)
        if device.type == "cuda":
            pixels = pixels.pin_memory().to(device, non_blocking=True)
        x = preprocess_images(pixels, self.resolution, device=device)
        probs = self.predictor.predict_pixels(x, out_size=self.resolution)
        return pack_bits(probs >= self.threshold).cpu().numpy()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = len(batch[IMAGE_ID])
        errors = np.array([cell_text(e) for e in batch[ERROR]], dtype=object)
        bits = np.zeros((n, packed_size(self.resolution)), dtype=np.uint8)
        ok = np.flatnonzero([not e for e in errors])
        if ok.size:
            images = np.ascontiguousarray(batch["image"][ok])
            try:
                bits[ok] = self._forward(images)
            except Exception:  # noqa: BLE001 - fall back to one row at a time, keep the rest
                for j, i in enumerate(ok):
                    try:
                        bits[i] = self._forward(images[j : j + 1])[0]
                    except Exception as err:  # noqa: BLE001 - becomes this row's error
                        errors[i] = str(
                            InputError(
                                MODEL_FAILED, f"{batch[IMAGE_ID][i]}: {type(err).__name__}: {err}"
                            )
                        )
        out = {k: v for k, v in batch.items() if k not in ("image", ERROR)}
        out[PSEUDO_BITS] = bits
        out[ERROR] = errors
        return out
