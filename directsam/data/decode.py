"""Image bytes -> RGB uint8 HxWx3 and label-map bytes -> int32 HxW, plus square resizes.

Everything decodes with Pillow (a core dependency). Pillow and OpenCV both wrap
libjpeg-turbo for JPEG, so cv2 brings no decode speed worth a second code path, and only
Pillow's EXIF handling matches what the image viewers (and the seed) show.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

from directsam.schema import ANNOTATION_INVALID, IMAGE_DECODE, IMAGE_TOO_LARGE, InputError

LabelMapMode = Literal["single_channel", "force_binary", "rgb"]
LABEL_MAP_MODES: tuple[LabelMapMode, ...] = get_args(LabelMapMode)

_EXIF_ORIENTATION = 0x0112


def _open_header(data: bytes, name: str, max_pixels: int, code: str, size_code: str):
    """Open ``data`` with Pillow and check its size from the header; no pixel is decoded."""
    from PIL import Image, UnidentifiedImageError

    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InputError(code, f"{name}: expected image bytes, got {type(data).__name__}")
    if len(data) == 0:
        raise InputError(code, f"{name}: empty file (0 bytes)")
    try:
        im = Image.open(io.BytesIO(bytes(data)))
    except Image.DecompressionBombError as err:
        # Pillow's own guard (2 x Image.MAX_IMAGE_PIXELS) fired while reading the header.
        raise InputError(size_code, f"{name}: {err}") from None
    except UnidentifiedImageError:
        raise InputError(code, f"{name}: not a recognised image format") from None
    except Exception as err:  # corrupt headers raise anything from SyntaxError to struct.error
        raise InputError(code, f"{name}: unreadable image header ({err})") from None
    w, h = im.size
    if w * h > max_pixels:
        raise InputError(size_code, f"{name}: {w}x{h} = {w * h} pixels exceeds max {max_pixels}")
    if w * h == 0:
        raise InputError(code, f"{name}: image has zero size {w}x{h}")
    return im


def _open(data: bytes, name: str, max_pixels: int, code: str, size_code: str):
    """Open ``data`` with Pillow, refuse oversized images from the header, load the pixels."""
    im = _open_header(data, name, max_pixels, code, size_code)
    try:
        im.load()
    except OSError as err:
        why = "truncated image data" if "truncated" in str(err) else f"corrupt image data ({err})"
        raise InputError(code, f"{name}: {why}") from None
    except Exception as err:
        raise InputError(code, f"{name}: corrupt image data ({err})") from None
    return _apply_exif_orientation(im)


def _exif_orientation(im) -> int:
    """The EXIF Orientation tag (1..8); 1 when absent, malformed or out of range."""
    try:
        orientation = im.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # malformed EXIF must not cost the image
        return 1
    return orientation if orientation in (2, 3, 4, 5, 6, 7, 8) else 1


def _apply_exif_orientation(im):
    """Rotate/flip as the EXIF Orientation tag says; a corrupt EXIF block is ignored."""
    from PIL import ImageOps

    if _exif_orientation(im) != 1:
        return ImageOps.exif_transpose(im)
    return im


def _high_depth_to_uint8(arr: np.ndarray, mode: str) -> np.ndarray:
    """16/32-bit integer or float grayscale -> uint8.

    ``I;16*`` keeps the top byte (value >> 8), the bit-depth meaning of the format. Mode ``I``
    and ``F`` carry no bit depth: values already in 0..255 stay, values in 0..65535 are
    treated as 16-bit (>> 8), anything else is min-max stretched to 0..255.
    """
    if mode.startswith("I;16"):
        return (arr.astype(np.uint32) >> 8).astype(np.uint8)
    arr = arr.astype(np.float64)
    finite = arr[np.isfinite(arr)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    arr = np.nan_to_num(arr, nan=lo, posinf=hi, neginf=lo)
    if lo >= 0 and hi <= 255:
        return np.rint(arr).astype(np.uint8)
    if lo >= 0 and hi <= 65535:
        return (np.rint(arr).astype(np.uint32) >> 8).astype(np.uint8)
    if hi == lo:
        return np.zeros(arr.shape, dtype=np.uint8)
    return np.rint((arr - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def _to_rgb_array(im, name: str) -> npt.NDArray[np.uint8]:
    mode = im.mode
    if mode == "RGB":
        out = np.asarray(im)
    elif mode.startswith("I") or mode == "F":
        gray = _high_depth_to_uint8(np.asarray(im), mode)
        out = np.repeat(gray[:, :, None], 3, axis=2)
    elif mode in ("P", "PA"):
        # Through RGBA so palette transparency is parsed (not warned about), then dropped.
        out = np.asarray(im.convert("RGBA"))[:, :, :3]
    else:
        # L, LA, 1, RGBA, RGBa, RGBX, CMYK, YCbCr, LAB, HSV, ...: alpha is dropped, not
        # composited, exactly as the seed's Image.convert("RGB") did.
        try:
            out = np.asarray(im.convert("RGB"))
        except (ValueError, OSError) as err:
            raise InputError(
                IMAGE_DECODE, f"{name}: unsupported image mode {mode} ({err})"
            ) from None
    return np.ascontiguousarray(out, dtype=np.uint8)


def decode_image(
    data: bytes, name: str = "<bytes>", max_pixels: int = 200_000_000
) -> npt.NDArray[np.uint8]:
    """Decode image bytes to RGB.

    The pixel count is checked from the header before any pixel is decoded (Pillow's own
    decompression-bomb limit, 2 x ``PIL.Image.MAX_IMAGE_PIXELS`` ~ 179 MP, also applies and
    reports the same error). EXIF orientation is applied. Grayscale, 1-bit, palette (with or
    without transparency), RGBA/LA (alpha dropped), CMYK and 16/32-bit images all become RGB
    uint8; 16-bit data keeps its high byte.

    Args:
        data: the encoded file (JPEG, PNG, TIFF, WebP, BMP, GIF: first frame, ...).
        name: file name or image id, quoted in error messages.
        max_pixels: refuse images with more than this many pixels (width * height).

    Returns:
        uint8 HxWx3, C-contiguous, H x W after EXIF rotation.

    Raises:
        InputError(IMAGE_TOO_LARGE): more pixels than allowed.
        InputError(IMAGE_DECODE): empty, unrecognised, truncated or corrupt data.
    """
    im = _open(data, name, max_pixels, IMAGE_DECODE, IMAGE_TOO_LARGE)
    return _to_rgb_array(im, name)


@dataclass(frozen=True)
class ImageHeader:
    """What an image's header says, read without decoding a pixel.

    Attributes:
        height, width: the size :func:`decode_image` returns (after EXIF orientation).
        orientation: EXIF Orientation 1..8 (1: none, or a malformed EXIF block).
        format: Pillow's format name (``JPEG``, ``PNG``, ``MPO``, ...).
        mode: Pillow's mode before conversion (``RGB``, ``L``, ``CMYK``, ...).
    """

    height: int
    width: int
    orientation: int
    format: str
    mode: str


def read_image_header(
    data: bytes, name: str = "<bytes>", max_pixels: int = 200_000_000
) -> ImageHeader:
    """The header of image bytes: size, EXIF orientation, format; no pixel is decoded.

    Refuses exactly what :func:`decode_image` refuses from the header, with the same errors
    (empty, unrecognised, oversized, zero-sized); damage in the pixel data (truncation,
    corrupt scans) shows only when the pixels are decoded.

    Raises:
        InputError(IMAGE_TOO_LARGE): more pixels than allowed.
        InputError(IMAGE_DECODE): empty data, unrecognised format or unreadable header.
    """
    im = _open_header(data, name, max_pixels, IMAGE_DECODE, IMAGE_TOO_LARGE)
    w, h = im.size
    orientation = _exif_orientation(im)
    if orientation in (5, 6, 7, 8):  # transposing orientations swap the sides
        h, w = w, h
    return ImageHeader(int(h), int(w), orientation, str(im.format), str(im.mode))


def decode_label_map(
    data: bytes,
    name: str = "<bytes>",
    mode: LabelMapMode = "single_channel",
    max_pixels: int = 200_000_000,
) -> npt.NDArray[np.int32]:
    """Decode a label-map image (PNG, TIFF, ...) to integer labels.

    Modes (DESIGN.md, Geometry): ``single_channel`` - pixel values are labels (palette images
    give palette indices, 16-bit PNGs their 16-bit values, 3-channel images their first
    channel); ``force_binary`` - label = first channel > (max of first channel) / 2, for
    saliency-style masks stored as 0/255 or anti-aliased grays; ``rgb`` - the image is
    converted to gray with Pillow's ``L`` (ITU-R 601-2 luma) and gray values are labels.

    Returns:
        int32 HxW labels (EXIF orientation applied, as for the image).

    Raises:
        ValueError: unknown ``mode`` (a configuration error, not a bad row).
        InputError(ANNOTATION_INVALID): the file cannot be decoded or is too large.
    """
    if mode not in LABEL_MAP_MODES:
        raise ValueError(f"label map mode must be one of {LABEL_MAP_MODES}, got {mode!r}")
    im = _open(data, name, max_pixels, ANNOTATION_INVALID, ANNOTATION_INVALID)
    if mode == "rgb":
        if im.mode not in ("L", "RGB"):
            im = im.convert("RGBA" if im.mode in ("P", "PA") else "RGB")
        return np.asarray(im.convert("L"), dtype=np.int32)
    arr = np.asarray(im)
    if arr.ndim == 3:
        arr = arr[:, :, 0]
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if mode == "force_binary":
        arr = arr > arr.max() / 2
    return np.ascontiguousarray(arr, dtype=np.int32)


def _size_hw(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        h = w = int(size)
    else:
        h, w = (int(v) for v in size)
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive, got {size!r}")
    return h, w


def nearest_indices(src: int, dst: int) -> npt.NDArray[np.int64]:
    """Source index sampled by each of ``dst`` output pixels in a nearest-neighbour resize.

    Pixel centres are aligned: output i samples floor((i + 0.5) * src / dst), computed in
    exact integer arithmetic. This is Pillow's ``Image.NEAREST`` (and cv2
    ``INTER_NEAREST_EXACT``); cv2's plain ``INTER_NEAREST`` is shifted by up to half a pixel.

    Returns:
        int64 (dst,) non-decreasing indices in [0, src).
    """
    i = np.arange(dst, dtype=np.int64)
    return (2 * i + 1) * src // (2 * dst)


def resize_label_map(labels: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a label map (any integer dtype, kept).

    Args:
        labels: HxW (or HxWxC) label array.
        size: output side for a square result, or ``(height, width)``.

    Returns:
        size x size (or height x width) array of the input dtype; see :func:`nearest_indices`.
    """
    h, w = _size_hw(size)
    rows = nearest_indices(labels.shape[0], h)
    cols = nearest_indices(labels.shape[1], w)
    return labels[rows[:, None], cols[None, :]]


def resize_rgb(image: npt.NDArray[np.uint8], size: int | tuple[int, int]) -> npt.NDArray[np.uint8]:
    """Antialiased bilinear resize of an RGB image to a square (or ``(height, width)``).

    Uses Pillow's ``Image.resize(..., Image.BILINEAR)``, whose filter support widens with the
    downscale factor (antialiasing). Hugging Face's ``SegformerImageProcessor`` resizes the
    same way (PIL bilinear on uint8), so model inputs built here match the released models'
    preprocessing.

    Args:
        image: uint8 HxWx3.
        size: output side, or ``(height, width)``.

    Returns:
        uint8 size x size x 3 (or height x width x 3).
    """
    from PIL import Image

    h, w = _size_hw(size)
    if image.shape[0] == h and image.shape[1] == w:
        return image
    pil = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8))
    return np.asarray(pil.resize((w, h), Image.BILINEAR))
