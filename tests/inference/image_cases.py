"""Encoded images that exercise the GPU decode path's choices (plain JPEG or not, EXIF, damage)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

# name -> whether the GPU decoders may take it (directsam.inference.gpu_decode.gpu_decodable)
GPU_OK = {
    "rgb": True,
    "gray": True,
    "exif6": True,  # plain JPEG with an Orientation tag: decoded on the GPU, turned upright
    "exif3": True,
    "progressive": False,
    "cmyk": False,
    "png": False,
    "truncated": False,
    "trailing": False,  # bytes after the EOI marker
    "garbage": False,
}


def pattern(h: int = 60, w: int = 84, seed: int = 0) -> np.ndarray:
    """A smooth RGB pattern with some edges (JPEG-friendly, non-square)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) % 256], axis=2)
    blocks = rng.integers(0, 60, (h // 12 + 1, w // 12 + 1, 3)).repeat(12, 0).repeat(12, 1)
    return np.clip(base + blocks[:h, :w], 0, 255).astype(np.uint8)


def encode(im: Image.Image, fmt: str = "JPEG", **kwargs) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def jpeg_with_orientation(array: np.ndarray, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(Image.fromarray(array), "JPEG", quality=92, exif=exif.tobytes())


def image_cases(h: int = 60, w: int = 84) -> dict[str, bytes]:
    """Encoded images named as in :data:`GPU_OK`."""
    arr = pattern(h, w)
    rgb = encode(Image.fromarray(arr), "JPEG", quality=92)
    return {
        "rgb": rgb,
        "gray": encode(Image.fromarray(arr[:, :, 1]), "JPEG", quality=92),
        "exif6": jpeg_with_orientation(arr, 6),
        "exif3": jpeg_with_orientation(arr, 3),
        "progressive": encode(Image.fromarray(arr), "JPEG", quality=92, progressive=True),
        "cmyk": encode(Image.fromarray(arr).convert("CMYK"), "JPEG", quality=92),
        "png": encode(Image.fromarray(arr), "PNG"),
        "truncated": rgb[: len(rgb) * 2 // 3],
        "trailing": rgb + b"\x00" * 16,
        "garbage": b"\x00garbage, not an image" * 5,
    }


def raw_jpeg_pixels(data: bytes) -> np.ndarray:
    """RGB pixels of a JPEG as stored (no EXIF orientation), as an nvJPEG decoder returns them."""
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))
