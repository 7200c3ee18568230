"""The bad-input catalogue: encoders for awkward but valid images, broken files, and a generated
SA-1B folder that holds every case next to good images, with the outcome each must get.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np

from directsam.data.sample import make_sample

H, W = 48, 64  # sample image size


def encode(array_or_image, fmt: str, **save_kw) -> bytes:
    from PIL import Image

    im = (
        array_or_image
        if isinstance(array_or_image, Image.Image)
        else Image.fromarray(array_or_image)
    )
    buf = io.BytesIO()
    im.save(buf, format=fmt, **save_kw)
    return buf.getvalue()


def rgb(h: int = H, w: int = W, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def huge_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` (a decompression-bomb header)."""
    data = encode(np.zeros((1, 1), np.uint8), "PNG")
    ihdr = data.index(b"IHDR")
    body = struct.pack(">II", width, height) + data[ihdr + 12 : ihdr + 17]
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + body) & 0xFFFFFFFF)
    return data[: ihdr + 4] + body + crc + data[ihdr + 21 :]


def gray_png(h: int = H, w: int = W) -> tuple[bytes, np.ndarray]:
    g = rgb(h, w, 1)[:, :, 0]
    return encode(g, "PNG"), np.repeat(g[:, :, None], 3, axis=2)


def png16(h: int = H, w: int = W) -> tuple[bytes, np.ndarray]:
    from PIL import Image

    v = np.random.default_rng(2).integers(0, 65536, (h, w), dtype=np.uint16)
    im = Image.fromarray(v)  # uint16 -> mode I;16
    assert im.mode == "I;16"
    hi = (v >> 8).astype(np.uint8)
    return encode(im, "PNG"), np.repeat(hi[:, :, None], 3, axis=2)


def rgba_png(h: int = H, w: int = W) -> tuple[bytes, np.ndarray]:
    a = np.random.default_rng(3).integers(0, 256, (h, w, 4), dtype=np.uint8)
    return encode(a, "PNG"), a[:, :, :3].copy()


def palette_png(h: int = H, w: int = W) -> tuple[bytes, np.ndarray]:
    from PIL import Image

    idx = np.random.default_rng(4).integers(0, 4, (h, w), dtype=np.uint8)
    colors = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]], np.uint8)
    im = Image.fromarray(idx)
    im.putpalette(colors.reshape(-1).tolist() + [0] * (768 - 12))
    assert im.mode == "P"
    return encode(im, "PNG"), colors[idx]


def cmyk_jpeg(h: int = H, w: int = W) -> bytes:
    from PIL import Image

    return encode(Image.fromarray(rgb(h, w, 5)).convert("CMYK"), "JPEG", quality=95)


def exif_rotated_jpeg(h: int = H, w: int = W) -> bytes:
    """A ``w`` x ``h`` (stored) JPEG whose EXIF orientation 6 makes it ``h`` x ``w`` when shown."""
    from PIL import Image

    im = Image.fromarray(rgb(w, h, 6))  # stored transposed: w rows, h columns
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(im, "JPEG", exif=exif.tobytes(), quality=95)


# --------------------------------------------------------------------------- SA-1B folder

# image id -> expected error code (None: a good row), for the folder built below.
SA1B_EXPECTED: dict[str, str | None] = {
    "sa_1": "image_decode",  # truncated JPEG
    "sa_2": "image_decode",  # zero-byte file
    "sa_3": "image_decode",  # non-image bytes
    "sa_4": "image_too_large",  # header claims 30000 x 30000
    "sa_5": None,  # grayscale PNG bytes
    "sa_6": None,  # CMYK JPEG
    "sa_7": None,  # 16-bit PNG
    "sa_8": None,  # RGBA PNG
    "sa_9": None,  # palette PNG
    "sa_10": None,  # EXIF-rotated JPEG (stored W x H)
    "sa_11": "annotation_missing",  # no sa_11.json
    "sa_12": "annotation_invalid",  # invalid JSON
    "sa_13": "rle_size_mismatch",  # a mask's RLE size differs from the image
    "sa_14": "rle_size_mismatch",  # the image differs from the size the JSON states
    "sa_15": "annotation_invalid",  # polygon segmentation (SA-1B requires RLE)
    "sa_16": None,  # empty annotation list
    "sa_17": "annotation_invalid",  # RLE counts covering the wrong number of pixels
    "sa_18": None,
    "sa_19": None,
    "sa_20": None,
}
# Failed rows name the image's source_uri (``.../sa_<n>.jpg``); annotation problems are
# reported against the image too, whose JSON sits beside it under the same stem.
SA1B_NAMED = {"sa_11": "sa_000000/sa_11.jpg", "sa_12": "sa_000000/sa_12.jpg"}


def bad_sa1b_folder(root: Path) -> Path:
    """One extracted SA-1B folder (20 images) holding every catalogue case; returns its path."""
    make_sample(root, num_images=20, seed=9, kind="sa1b", height=H, width=W, images_per_tar=20)
    d = root / "sa_000000"
    jpg = (d / "sa_1.jpg").read_bytes()
    (d / "sa_1.jpg").write_bytes(jpg[: len(jpg) // 2])
    (d / "sa_2.jpg").write_bytes(b"")
    (d / "sa_3.jpg").write_bytes(b"%PDF-1.4 this is not an image\n" * 10)
    (d / "sa_4.jpg").write_bytes(huge_png(30000, 30000))
    (d / "sa_5.jpg").write_bytes(gray_png()[0])
    (d / "sa_6.jpg").write_bytes(cmyk_jpeg())
    (d / "sa_7.jpg").write_bytes(png16()[0])
    (d / "sa_8.jpg").write_bytes(rgba_png()[0])
    (d / "sa_9.jpg").write_bytes(palette_png()[0])
    (d / "sa_10.jpg").write_bytes(exif_rotated_jpeg())
    (d / "sa_11.json").unlink()
    (d / "sa_12.json").write_bytes(b'{"image": {"image_id": 12, "width": 64,')

    def edit(n: int, fn) -> None:
        doc = json.loads((d / f"sa_{n}.json").read_text())
        fn(doc)
        (d / f"sa_{n}.json").write_text(json.dumps(doc))

    def grow(doc):
        doc["annotations"][0]["segmentation"]["size"] = [H + 2, W]

    def polygon(doc):
        doc["annotations"][0]["segmentation"] = [[2, 2, 30, 2, 30, 20, 2, 20]]

    def empty(doc):
        doc["annotations"] = []

    def bad_counts(doc):
        from directsam.data.rle import mask_to_rle

        # counts of an H x (W - 1) mask under a [H, W] size: they cover H pixels too few
        short = mask_to_rle(np.ones((H, W - 1), bool))["counts"]
        doc["annotations"][0]["segmentation"]["counts"] = short

    edit(13, grow)
    (d / "sa_14.jpg").write_bytes(encode(rgb(H + 8, W), "JPEG"))
    edit(15, polygon)
    edit(16, empty)
    edit(17, bad_counts)
    return d
