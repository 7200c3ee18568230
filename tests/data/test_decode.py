"""decode_image / decode_label_map / resizes: every image mode, EXIF, bad bytes, bomb guard."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from directsam.data.decode import (
    decode_image,
    decode_label_map,
    nearest_indices,
    resize_label_map,
    resize_rgb,
)
from directsam.schema import ANNOTATION_INVALID, IMAGE_DECODE, IMAGE_TOO_LARGE, InputError


def encode(im: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def rgb_pattern(h: int = 16, w: int = 24) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (8-bit gray) followed by a tiny broken IDAT."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_rgb_png_exact():
    arr = rgb_pattern()
    out = decode_image(encode(Image.fromarray(arr)), "a.png")
    assert out.dtype == np.uint8 and out.shape == (16, 24, 3) and out.flags.c_contiguous
    np.testing.assert_array_equal(out, arr)


def test_rgb_jpeg_shape():
    out = decode_image(encode(Image.fromarray(rgb_pattern()), "JPEG", quality=95), "a.jpg")
    assert out.shape == (16, 24, 3) and out.dtype == np.uint8


def test_gray_modes():
    gray = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    expected = np.repeat(gray[:, :, None], 3, axis=2)
    np.testing.assert_array_equal(decode_image(encode(Image.fromarray(gray, "L"))), expected)
    la = Image.merge("LA", [Image.fromarray(gray), Image.fromarray(255 - gray)])
    np.testing.assert_array_equal(decode_image(encode(la)), expected)  # alpha dropped


def test_rgba_drops_alpha_without_compositing():
    arr = rgb_pattern(4, 5)
    alpha = np.zeros((4, 5), dtype=np.uint8)  # fully transparent: colours must survive
    rgba = np.concatenate([arr, alpha[:, :, None]], axis=2)
    np.testing.assert_array_equal(decode_image(encode(Image.fromarray(rgba, "RGBA"))), arr)


@pytest.mark.parametrize("transparency", [None, 0])
def test_palette(transparency):
    idx = np.array([[0, 1, 2], [2, 1, 0]], dtype=np.uint8)
    im = Image.fromarray(idx, "P")
    palette = [255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (768 - 9)
    im.putpalette(palette)
    kwargs = {} if transparency is None else {"transparency": transparency}
    out = decode_image(encode(im, **kwargs), "p.png")
    colours = np.array(palette[:9], dtype=np.uint8).reshape(3, 3)
    np.testing.assert_array_equal(out, colours[idx])


def test_cmyk():
    cmyk = np.zeros((2, 2, 4), dtype=np.uint8)
    cmyk[0, 1] = [255, 0, 0, 0]  # cyan
    cmyk[1, 0] = [0, 0, 0, 255]  # black
    out = decode_image(encode(Image.fromarray(cmyk, "CMYK"), "TIFF"), "c.tif")
    np.testing.assert_array_equal(out[0, 0], [255, 255, 255])
    np.testing.assert_array_equal(out[0, 1], [0, 255, 255])
    np.testing.assert_array_equal(out[1, 0], [0, 0, 0])


def test_16bit_png_keeps_high_byte():
    arr = (np.arange(20, dtype=np.uint32).reshape(4, 5) * 3000).astype(np.uint16)
    data = encode(Image.fromarray(arr))
    assert Image.open(io.BytesIO(data)).mode.startswith("I;16")
    out = decode_image(data, "d.png")
    np.testing.assert_array_equal(out[:, :, 0], (arr >> 8).astype(np.uint8))
    assert (out[:, :, 0] == out[:, :, 2]).all()


@pytest.mark.parametrize(
    "values, expected",
    [
        (np.array([[0, 100, 255]]), np.array([[0, 100, 255]])),  # already 8-bit range
        (np.array([[0, 4096, 65535]]), np.array([[0, 16, 255]])),  # 16-bit range: >> 8
        (np.array([[-10, 90, 500]]), np.array([[0, 50, 255]])),  # otherwise min-max
    ],
)
def test_32bit_int_tiff(values, expected):
    im = Image.fromarray(values.astype(np.int32), "I")
    out = decode_image(encode(im, "TIFF"), "i.tif")
    np.testing.assert_array_equal(out[:, :, 1], expected.astype(np.uint8))


def test_one_bit():
    bits = np.array([[True, False], [False, True]])
    out = decode_image(encode(Image.fromarray(bits)), "b.png")
    np.testing.assert_array_equal(out[:, :, 0], np.where(bits, 255, 0))


def test_exif_orientation_applied():
    im = Image.fromarray(np.kron(rgb_pattern(2, 3), np.ones((8, 8, 1), dtype=np.uint8)))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    plain = decode_image(encode(im, "JPEG", quality=95), "plain.jpg")
    rotated = decode_image(encode(im, "JPEG", quality=95, exif=exif.tobytes()), "r.jpg")
    assert plain.shape == (16, 24, 3) and rotated.shape == (24, 16, 3)
    np.testing.assert_array_equal(rotated, np.rot90(plain, k=-1))


@pytest.mark.parametrize(
    "data, why",
    [
        (b"", "empty file"),
        (b"this is not an image at all", "not a recognised image format"),
        (b"\xff\xd8\xff", "jpg"),  # JPEG magic, nothing else
    ],
)
def test_bad_bytes_name_the_file(data, why):
    with pytest.raises(InputError) as info:
        decode_image(data, "photos/x.jpg")
    assert info.value.code == IMAGE_DECODE
    assert str(info.value).startswith("image_decode: photos/x.jpg: ")


def test_truncated_jpeg():
    data = encode(Image.fromarray(rgb_pattern(64, 64)), "JPEG", quality=95)
    with pytest.raises(InputError) as info:
        decode_image(data[: len(data) // 2], "t.jpg")
    assert info.value.code == IMAGE_DECODE
    assert "t.jpg" in str(info.value) and "truncated" in str(info.value)


def test_bomb_guard_checks_header_before_decoding():
    # 12000 x 7000 = 84 MP declared, a few bytes of data: refused from the header alone.
    data = png_header_only(12000, 7000)
    with pytest.raises(InputError) as info:
        decode_image(data, "big.png", max_pixels=50_000_000)
    assert info.value.code == IMAGE_TOO_LARGE
    assert "big.png: 12000x7000" in str(info.value)
    # Pillow's own limit (~179 MP) reports the same code.
    with pytest.raises(InputError) as info:
        decode_image(png_header_only(60000, 60000), "huge.png")
    assert info.value.code == IMAGE_TOO_LARGE and "huge.png" in str(info.value)


def test_small_max_pixels():
    data = encode(Image.fromarray(rgb_pattern(10, 10)))
    with pytest.raises(InputError, match="exceeds max 99"):
        decode_image(data, "s.png", max_pixels=99)
    assert decode_image(data, "s.png", max_pixels=100).shape == (10, 10, 3)


# --- label maps ------------------------------------------------------------------------------


def test_label_map_single_channel_palette_and_16bit():
    idx = np.array([[0, 3, 7], [7, 3, 0]], dtype=np.uint8)
    im = Image.fromarray(idx, "P")
    im.putpalette(list(range(256)) * 3)
    out = decode_label_map(encode(im), "l.png", "single_channel")
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, idx)
    big = np.array([[0, 300], [65535, 1]], dtype=np.uint16)
    np.testing.assert_array_equal(decode_label_map(encode(Image.fromarray(big)), "l16.png"), big)


def test_label_map_rgb_first_channel_in_single_channel_mode():
    arr = rgb_pattern(3, 4)
    out = decode_label_map(encode(Image.fromarray(arr)), "l.png", "single_channel")
    np.testing.assert_array_equal(out, arr[:, :, 0])


def test_label_map_force_binary():
    gray = np.array([[0, 100, 127], [128, 200, 255]], dtype=np.uint8)
    out = decode_label_map(encode(Image.fromarray(gray)), "m.png", "force_binary")
    np.testing.assert_array_equal(out, [[0, 0, 0], [1, 1, 1]])  # > 255 / 2


def test_label_map_rgb_mode_uses_pil_luma():
    arr = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]], dtype=np.uint8)
    out = decode_label_map(encode(Image.fromarray(arr)), "c.png", "rgb")
    np.testing.assert_array_equal(out, [[76, 150, 29, 255]])


def test_label_map_errors():
    with pytest.raises(ValueError, match="label map mode"):
        decode_label_map(b"", "x.png", "bogus")  # type: ignore[arg-type]
    with pytest.raises(InputError) as info:
        decode_label_map(b"garbage", "labels/x.png")
    assert info.value.code == ANNOTATION_INVALID and "labels/x.png" in str(info.value)


# --- resizes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("src, dst", [(37, 20), (53, 80), (1500, 1024), (2250, 1024), (7, 7)])
def test_nearest_indices_match_pil_nearest(src, dst):
    row = np.arange(src, dtype=np.uint8 if src < 256 else np.int32)[None, :] % 251
    pil = np.asarray(Image.fromarray(row.astype(np.uint8)).resize((dst, 1), Image.NEAREST))[0]
    np.testing.assert_array_equal(row[0, nearest_indices(src, dst)].astype(np.uint8), pil)


def test_resize_label_map_keeps_dtype_and_values():
    labels = np.random.default_rng(0).integers(0, 100_000, (37, 53)).astype(np.int32)
    out = resize_label_map(labels, 64)
    assert out.shape == (64, 64) and out.dtype == np.int32
    assert set(np.unique(out)) <= set(np.unique(labels))
    assert resize_label_map(labels, (10, 20)).shape == (10, 20)
    small = (labels % 256).astype(np.uint8)
    pil = np.asarray(Image.fromarray(small).resize((40, 30), Image.NEAREST))
    np.testing.assert_array_equal(resize_label_map(small, (30, 40)), pil)


def test_resize_rgb_is_pil_bilinear():
    arr = rgb_pattern(50, 70)
    out = resize_rgb(arr, 32)
    expected = np.asarray(Image.fromarray(arr).resize((32, 32), Image.BILINEAR))
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)
    assert resize_rgb(arr, (20, 10)).shape == (20, 10, 3)


def test_resize_rgb_matches_hf_segformer_processor():
    transformers = pytest.importorskip("transformers")
    arr = rgb_pattern(50, 70)
    proc = transformers.SegformerImageProcessor(
        size={"height": 32, "width": 32}, do_rescale=False, do_normalize=False
    )
    hf = proc(images=arr, return_tensors="np")["pixel_values"][0].transpose(1, 2, 0)
    np.testing.assert_array_equal(resize_rgb(arr, 32).astype(np.float32), hf)
