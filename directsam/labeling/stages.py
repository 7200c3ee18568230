"""The per-batch steps of the labeling pipeline (plain functions and one model-holding class).

    listing rows --prepare_rows (CPU tasks)--> decoded RGB at R + human boundary RLE
                 --LabelPredictor (GPU actors)--> thresholded boundary, bit-packed
                 --encode_pseudo (CPU tasks)--> pseudo boundary RLE (compact rows)

With ``decode_images=False`` (``compute.image_decode``: the GPU decode path, docs/SIZING.md)
the CPU tasks read only the image header (size for the human boundary, errors the header
shows) and pass the compressed bytes on; the actors decode them (nvJPEG for plain JPEGs,
Pillow for the rest, :mod:`directsam.inference.bytes_input`), resize on the device and run
the model.

None of them needs Ray: each maps ``dict[str, np.ndarray]`` to ``dict[str, np.ndarray]`` and is
unit-tested on plain dicts. Outputs are compact on purpose (uint8 RGB or JPEG bytes into the
GPU stage, 1 bit per pixel out of it, RLE strings after), so the object store never holds
float maps.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import numpy.typing as npt

from directsam.data.sources.tarstream import BLOCK, BLOCK_INFO
from directsam.data.targets import cell_text
from directsam.inference.postprocess import pack_boundary, packed_size, unpack_boundary
from directsam.schema import (
    ERROR,
    HEIGHT,
    IMAGE_BYTES,
    IMAGE_DECODE,
    IMAGE_ID,
    IMAGE_TOO_LARGE,
    MODEL_FAILED,
    SOURCE_URI,
    WIDTH,
    InputError,
)

HUMAN_COUNTS = "human_counts"  # str | None: COCO counts of the human boundary at R x R
PSEUDO_COUNTS = "pseudo_counts"  # str | None: COCO counts of the pseudo boundary at R x R
PSEUDO_BITS = "pseudo_bits"  # uint8 (N, ceil(R*R/8)): the thresholded map, column-major bits
# str | None: the annotation's error of a row whose image is still to be decoded (GPU decode
# path). It becomes the row's error unless decoding fails, whose error wins as on the CPU path.
PENDING_ERROR = "pending_error"
# Columns every stage passes through unchanged (the driver groups rows into shards by them).
PASS_THROUGH = (BLOCK, BLOCK_INFO, "image_id", "source_uri", "dataset")


def unpack_bits(packed: npt.NDArray[np.uint8], resolution: int) -> npt.NDArray[np.bool_]:
    """One row of :data:`PSEUDO_BITS` -> bool (R, R) (see ``postprocess.unpack_boundary``)."""
    return unpack_boundary(packed, resolution, resolution)


def prepare_rows(
    batch: dict[str, np.ndarray],
    resolution: int,
    thickness: int,
    decode_images: bool = True,
    store: Any = None,
) -> dict[str, np.ndarray]:
    """CPU stage: read bytes (listed rows), decode + resize to R, human boundary -> RLE counts.

    Args:
        batch: listing rows (``SourceItem.to_row()`` + ``block``), or source rows that already
            hold ``image_bytes`` (tar streams, + ``block`` / ``block_info``).
        resolution: model input side R.
        thickness: human boundary band thickness at R.
        decode_images: False for the GPU decode path: only the image header is read here
            (size for the human boundary, the errors a header shows) and the compressed
            bytes go on to the model actors.
        store: the job's S3 settings (``StoreOptions``) for reading listed rows.

    Returns:
        ``image`` uint8 (N, R, R, 3) (or, without ``decode_images``, ``image_bytes`` and
        ``pending_error``), ``height``/``width`` int32, ``human_counts`` (str, or None when
        the source has no annotation or the row failed), ``error``, and the pass-through
        columns ``block, block_info, image_id, source_uri, dataset``.
    """
    from directsam.data.rle import mask_to_rle
    from directsam.data.sources import read_items
    from directsam.data.targets import HAS_TARGET, TARGET, decode_rows

    rows = batch if IMAGE_BYTES in batch else read_items(batch, store)
    decoded = decode_rows(
        rows, resolution, thickness, keep_image=decode_images, header_only=not decode_images
    )
    n = len(decoded[IMAGE_ID])
    human = np.empty(n, dtype=object)
    for i in range(n):
        if decoded[HAS_TARGET][i] and not cell_text(decoded[ERROR][i]):
            human[i] = mask_to_rle(decoded[TARGET][i])["counts"]
    keep = (*PASS_THROUGH, "image", "height", "width", "error")
    out = {k: decoded[k] for k in keep if k in decoded}
    out[HUMAN_COUNTS] = human
    if not decode_images:
        out.update(_defer_annotation_errors(rows, out))
    return out


def _defer_annotation_errors(
    rows: dict[str, np.ndarray], decoded: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Header-only rows: the bytes to decode, and annotation errors held until decoding.

    On the CPU path a row whose image fails to decode gets the decode error even when its
    annotation is bad too (decode comes first). Here decoding happens in the actor, so an
    annotation error found now (any code but the header's ``image_decode`` /
    ``image_too_large``, on a row that was read) waits in ``pending_error`` and the image
    still goes to the actor; rows that failed for good carry no bytes.
    """
    n = len(decoded[IMAGE_ID])
    blobs = np.empty(n, dtype=object)
    pending = np.empty(n, dtype=object)
    errors = decoded[ERROR].copy()
    for i in range(n):
        error = cell_text(errors[i])
        if error and not cell_text(rows[ERROR][i]):
            code = error.split(":", 1)[0]
            if code not in (IMAGE_DECODE, IMAGE_TOO_LARGE):
                pending[i], errors[i] = error, None
        if not cell_text(errors[i]):
            blobs[i] = rows[IMAGE_BYTES][i]
    return {IMAGE_BYTES: blobs, PENDING_ERROR: pending, ERROR: errors}


def encode_pseudo(batch: dict[str, np.ndarray], resolution: int) -> dict[str, np.ndarray]:
    """CPU stage: bit-packed pseudo boundaries -> COCO RLE counts (None for failed rows).

    The bits are column-major (``postprocess.pack_boundary``), so pycocotools encodes them
    without a transpose copy (3.8x cheaper than a row-major mask at 1800 px).
    """
    from directsam.inference.postprocess import boundary_rle_counts

    n = len(batch[IMAGE_ID])
    counts = np.empty(n, dtype=object)
    for i in range(n):
        if not cell_text(batch[ERROR][i]):
            counts[i] = boundary_rle_counts(batch[PSEUDO_BITS][i], resolution, resolution)
    out = {k: v for k, v in batch.items() if k != PSEUDO_BITS}
    out[PSEUDO_COUNTS] = counts
    return out


class LabelPredictor:
    """Model stage (one instance per Ray actor): images -> thresholded, packed boundaries.

    The model is loaded once in ``__init__``. Batches carry either decoded uint8 images
    (``image``) or compressed bytes (``image_bytes``, the GPU decode path: decoded here by the
    decoder ``image_decode`` selects, see :mod:`directsam.inference.bytes_input`). Each call
    normalises on the device, runs the forward (bf16/fp16 autocast on CUDA), thresholds at
    ``threshold`` on the device and packs 8 pixels per byte. Rows that already failed are
    skipped; a row whose bytes fail to decode gets the decode error. If a batch forward
    raises, rows are retried one at a time, and a row that still fails gets ``model_failed``.

    Args:
        image_decode: ``cpu`` (bytes are decoded by Pillow), ``auto`` (a GPU decoder when the
            device is CUDA and one is installed, else Pillow), ``gpu`` (a GPU decoder is
            required: the constructor raises without one).
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
        image_decode: str = "cpu",
    ):
        from directsam.inference.gpu_decode import select_decoder
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
        self.decoder = None
        if image_decode != "cpu":  # "gpu" raises when no GPU decoder works here
            self.decoder = select_decoder(self.predictor.device, image_decode)

    def _forward(self, pixels: Any) -> np.ndarray:
        """float (n, 3, R, R) normalised pixels -> uint8 (n, packed) thresholded bits."""
        probs = self.predictor.predict_pixels(pixels, out_size=self.resolution)
        return pack_boundary(probs, self.threshold).cpu().numpy()

    def _pixels(self, images: np.ndarray) -> Any:
        """uint8 (n, R, R, 3) decoded images -> normalised pixels on the device."""
        import torch

        from directsam.inference.preprocess import preprocess_images

        device = self.predictor.device
        with warnings.catch_warnings():
            # Batches are read-only views of the object store; torch warns but only reads.
            warnings.simplefilter("ignore", UserWarning)
            pixels = torch.from_numpy(images)
        if device.type == "cuda":
            pixels = pixels.pin_memory().to(device, non_blocking=True)
        return preprocess_images(pixels, self.resolution, device=device)

    def _decode_bytes(
        self, batch: dict[str, np.ndarray], ok: np.ndarray, errors: np.ndarray
    ) -> tuple[Any, np.ndarray, dict[str, np.ndarray]]:
        """GPU decode path: pixels of the ``ok`` rows that decode, and the updated columns."""
        from directsam.inference.bytes_input import bytes_to_pixels

        names = [
            str(cell_text(batch[SOURCE_URI][i]) or batch[IMAGE_ID][i]) if SOURCE_URI in batch
            else str(batch[IMAGE_ID][i])
            for i in ok
        ]  # fmt: skip
        blobs = [batch[IMAGE_BYTES][i] for i in ok]
        dec = bytes_to_pixels(blobs, names, self.resolution, self.predictor.device, self.decoder)
        cols = {k: batch[k].copy() for k in (HEIGHT, WIDTH) if k in batch}
        if HUMAN_COUNTS in batch:  # object, even where Ray turned an all-None column to NaN
            cols[HUMAN_COUNTS] = np.array([cell_text(v) for v in batch[HUMAN_COUNTS]], object)
        pending = batch.get(PENDING_ERROR)
        keep = []
        for j, i in enumerate(ok):
            if dec.errors[j]:  # the decode error wins, as on the CPU path
                errors[i] = dec.errors[j]
                for v in cols.values():
                    v[i] = None if v.dtype == object else 0
            elif pending is not None and cell_text(pending[i]):
                errors[i] = cell_text(pending[i])
            else:
                keep.append(j)
        return dec.pixels[keep], ok[keep], cols

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = len(batch[IMAGE_ID])
        errors = np.array([cell_text(e) for e in batch[ERROR]], dtype=object)
        bits = np.zeros((n, packed_size(self.resolution)), dtype=np.uint8)
        ok = np.flatnonzero([not e for e in errors])
        cols: dict[str, np.ndarray] = {}
        if IMAGE_BYTES in batch:
            pixels, ok, cols = self._decode_bytes(batch, ok, errors)
        elif ok.size:
            pixels = self._pixels(np.ascontiguousarray(batch["image"][ok]))
        if ok.size:
            try:
                bits[ok] = self._forward(pixels)
            except Exception:  # noqa: BLE001 - fall back to one row at a time, keep the rest
                for j, i in enumerate(ok):
                    try:
                        bits[i] = self._forward(pixels[j : j + 1])[0]
                    except Exception as err:  # noqa: BLE001 - becomes this row's error
                        errors[i] = str(
                            InputError(
                                MODEL_FAILED, f"{batch[IMAGE_ID][i]}: {type(err).__name__}: {err}"
                            )
                        )
        drop = ("image", IMAGE_BYTES, PENDING_ERROR, ERROR)
        out = {k: v for k, v in batch.items() if k not in drop}
        out.update(cols)
        out[PSEUDO_BITS] = bits
        out[ERROR] = errors
        return out
