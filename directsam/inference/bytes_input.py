"""Compressed image bytes -> normalised SegFormer input on the model's device.

The model actor's input step when it receives bytes instead of decoded images
(``compute.image_decode``, docs/SIZING.md). Plain JPEGs are decoded by the GPU decoder of
:mod:`directsam.inference.gpu_decode`, turned upright and resized on the device. Every other
image, and every image the GPU decoder fails on, is decoded by Pillow and resized on the CPU
exactly as the CPU decode tasks do (:func:`directsam.data.decode.decode_image` +
:func:`~directsam.data.decode.resize_rgb`), so such a row gets the same pixels, and a bad image
the same ``"<code>: <detail>"`` error, as on the CPU path.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from directsam.schema import IMAGE_DECODE, InputError

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)


@dataclass
class DecodedBatch:
    """Model input for a batch of encoded images.

    Attributes:
        pixels: float32 ``(N, 3, R, R)`` normalised input on the device (zeros where failed).
        errors: per row None, or ``"<code>: <detail>"`` (then its pixels are zeros).
        sizes: per row the decoded ``(H, W)`` after EXIF orientation (``(0, 0)`` if failed).
        on_gpu: per row whether the GPU decoder decoded it (False: Pillow, or failed).
    """

    pixels: torch.Tensor
    errors: list[str | None]
    sizes: list[tuple[int, int]]
    on_gpu: list[bool]


def _cpu_pixels(data: bytes, name: str, resolution: int, device: Any) -> tuple[Any, Any]:
    """The CPU path of one image: (normalised (1, 3, R, R) on device, (H, W))."""
    from directsam.data.decode import decode_image, resize_rgb
    from directsam.inference.preprocess import as_tensor, preprocess_images

    image = decode_image(data, name)
    small = as_tensor(resize_rgb(image, resolution))[None]
    if getattr(device, "type", str(device)) == "cuda":
        small = small.pin_memory().to(device, non_blocking=True)
    return preprocess_images(small, resolution, device=device), image.shape[:2]


def _gpu_results(decoder: Any, blobs: list[bytes]) -> list[Any]:
    """The decoder's outputs, or all None when the whole call fails (CPU for every image)."""
    if decoder is None or not blobs:
        return [None] * len(blobs)
    try:
        out = list(decoder.decode(blobs))
    except Exception as err:  # noqa: BLE001 - e.g. out of device memory: decode on the CPU
        logger.warning("GPU decode of %d images failed (%s); CPU decode instead", len(blobs), err)
        return [None] * len(blobs)
    return out if len(out) == len(blobs) else [None] * len(blobs)


def bytes_to_pixels(
    blobs: Sequence[bytes | None],
    names: Sequence[str],
    resolution: int,
    device: str | torch.device,
    decoder: Any = None,
) -> DecodedBatch:
    """Decode, orient, resize and normalise encoded images for the model.

    Args:
        blobs: encoded images (None or empty: the row fails with ``image_decode``).
        names: per image a name for error messages (the source URI, as the CPU path uses).
        resolution: side ``R`` of the square model input.
        device: where the pixels go (the model's device).
        decoder: a decoder from :func:`directsam.inference.gpu_decode.select_decoder`, or
            None for Pillow only.

    Returns:
        A :class:`DecodedBatch` with one row per input, in order.
    """
    import torch

    from directsam.data.decode import read_image_header
    from directsam.inference.gpu_decode import apply_orientation, gpu_decodable
    from directsam.inference.preprocess import preprocess_images

    device = torch.device(device)
    n = len(blobs)
    headers: list[Any] = [None] * n
    errors: list[str | None] = [None] * n
    for i, (blob, name) in enumerate(zip(blobs, names)):
        try:
            if not blob:
                raise InputError(IMAGE_DECODE, f"{name}: empty file (0 bytes)")
            headers[i] = read_image_header(bytes(blob), name)
        except InputError as err:
            errors[i] = str(err)
    candidates = [
        i for i in range(n) if decoder is not None and headers[i] and gpu_decodable(blobs[i])
    ]
    decoded = dict(zip(candidates, _gpu_results(decoder, [bytes(blobs[i]) for i in candidates])))

    rows: list[Any] = []
    sizes: list[tuple[int, int]] = [(0, 0)] * n
    on_gpu = [False] * n
    zeros = torch.zeros((1, 3, resolution, resolution), dtype=torch.float32, device=device)
    for i in range(n):
        header, image = headers[i], decoded.get(i)
        if header is None:
            rows.append(zeros)
            continue
        raw_hw = (header.width, header.height) if header.orientation in (5, 6, 7, 8) else None
        raw_hw = raw_hw or (header.height, header.width)
        if image is not None and tuple(image.shape[:2]) == raw_hw and image.shape[-1] in (1, 3):
            upright = apply_orientation(image.expand(*image.shape[:2], 3), header.orientation)
            x = preprocess_images(upright.contiguous()[None], resolution, device=device)
            rows.append(x)
            sizes[i], on_gpu[i] = (header.height, header.width), True
            continue
        try:
            x, hw = _cpu_pixels(bytes(blobs[i]), names[i], resolution, device)  # type: ignore[arg-type]
        except InputError as err:
            errors[i] = str(err)
            rows.append(zeros)
            continue
        rows.append(x)
        sizes[i] = (int(hw[0]), int(hw[1]))
    pixels = torch.cat(rows) if rows else zeros[:0]
    return DecodedBatch(pixels=pixels, errors=errors, sizes=sizes, on_gpu=on_gpu)
