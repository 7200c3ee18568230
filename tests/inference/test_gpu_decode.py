"""GPU decode path, CPU-testable parts: which images qualify, EXIF on tensors, decoder choice."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from directsam.config import ConfigError
from directsam.data.decode import decode_image, read_image_header
from directsam.inference import gpu_decode
from directsam.inference.gpu_decode import (
    apply_orientation,
    gpu_decodable,
    resolve_image_decode,
    scan_jpeg,
    select_decoder,
)
from directsam.schema import InputError
from tests.inference.image_cases import (
    GPU_OK,
    image_cases,
    jpeg_with_orientation,
    pattern,
    raw_jpeg_pixels,
)


@pytest.fixture(scope="module")
def cases():
    return image_cases()


@pytest.mark.parametrize("name", sorted(GPU_OK))
def test_only_plain_complete_jpegs_go_to_the_gpu(cases, name):
    assert gpu_decodable(cases[name]) is GPU_OK[name]


def test_frame_header_is_read_from_the_markers(cases):
    rgb, gray, prog, cmyk = (scan_jpeg(cases[k]) for k in ("rgb", "gray", "progressive", "cmyk"))
    assert (rgb.marker, rgb.precision, rgb.height, rgb.width, rgb.components) == (
        0xC0, 8, 60, 84, 3,
    )  # fmt: skip
    assert gray.components == 1 and prog.marker == 0xC2
    assert cmyk.components == 4 and cmyk.adobe_transform is not None
    assert scan_jpeg(cases["png"]) is None and scan_jpeg(b"\xff\xd8\xff") is None
    assert scan_jpeg(b"\xff\xd8\xff\xe0\x00\x40JFIF") is None  # segment runs past the end


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_on_tensors_equals_pillow(orientation):
    arr = pattern(30, 44, seed=orientation)
    data = jpeg_with_orientation(arr, orientation)
    raw = torch.from_numpy(raw_jpeg_pixels(data).copy())
    upright = apply_orientation(raw, orientation).numpy()
    np.testing.assert_array_equal(upright, decode_image(data, "x.jpg"))
    header = read_image_header(data, "x.jpg")
    assert header.orientation == orientation
    assert (header.height, header.width) == upright.shape[:2]


def test_header_refuses_what_decode_refuses_with_the_same_error(cases):
    for data, limit in ((b"", 10**9), (cases["garbage"], 10**9), (cases["rgb"], 100)):
        with pytest.raises(InputError) as from_header:
            read_image_header(data, "n.jpg", max_pixels=limit)
        with pytest.raises(InputError) as from_decode:
            decode_image(data, "n.jpg", max_pixels=limit)
        assert str(from_header.value) == str(from_decode.value)
    # Damage in the pixel data is invisible to the header, visible to the decoder.
    assert read_image_header(cases["truncated"], "t.jpg").format == "JPEG"
    with pytest.raises(InputError, match="image_decode: t.jpg: truncated image data"):
        decode_image(cases["truncated"], "t.jpg")


# ----------------------------------------------------------------------------- selection


class FakeDecoder:
    def __init__(self, device):
        self.device = device

    def decode(self, blobs):
        return [None] * len(blobs)


@pytest.fixture
def fresh_choice(monkeypatch):
    """Pretend CUDA is there; give each test its own decoder table and log-once memory."""
    monkeypatch.setattr(gpu_decode, "_logged", set())
    monkeypatch.setattr(gpu_decode, "_cuda_ready", lambda device: device.type == "cuda")
    table = {}
    monkeypatch.setattr(gpu_decode, "DECODERS", table)

    def install(name, available, build=None):
        cls = type(name, (FakeDecoder,), {"name": name})
        table[name] = (lambda: available, build or cls)

    return install


def test_nvimgcodec_is_preferred_then_torchvision(fresh_choice):
    fresh_choice("nvimgcodec", True)
    fresh_choice("torchvision", True)
    assert select_decoder("cuda:0").name == "nvimgcodec"
    assert select_decoder("cuda:0", "torchvision").name == "torchvision"


def test_torchvision_when_nvimgcodec_is_missing(fresh_choice):
    fresh_choice("nvimgcodec", False)
    fresh_choice("torchvision", True)
    decoder = select_decoder("cuda")
    assert decoder.name == "torchvision" and decoder.device == torch.device("cuda")


def test_cpu_without_cuda_or_package_or_when_configured(fresh_choice):
    fresh_choice("nvimgcodec", True)
    assert select_decoder("cpu") is None
    assert select_decoder("cuda", "cpu") is None
    fresh_choice("nvimgcodec", False)
    fresh_choice("torchvision", False)
    assert select_decoder("cuda") is None


def test_a_decoder_that_fails_to_start_is_skipped(fresh_choice):
    def broken(device):
        raise RuntimeError("nvjpeg: no hardware decoder")

    fresh_choice("nvimgcodec", True, build=broken)
    fresh_choice("torchvision", True)
    assert select_decoder("cuda").name == "torchvision"


def test_the_choice_is_logged_once_per_process(fresh_choice, caplog):
    fresh_choice("nvimgcodec", False)
    fresh_choice("torchvision", False)
    with caplog.at_level(logging.INFO, logger="directsam.inference.gpu_decode"):
        for _ in range(3):
            select_decoder("cuda")
        fresh_choice("nvimgcodec", True)
        for _ in range(2):
            select_decoder("cuda")
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert "CPU (Pillow): no GPU JPEG decoder" in messages[0]
    assert "nvidia-nvimgcodec-cu12" in messages[0]
    assert messages[1] == "image decode: GPU (nvimgcodec, nvJPEG) on cuda"


def test_unknown_decoder_name_is_refused(fresh_choice):
    with pytest.raises(ValueError, match="unknown GPU decoder 'nvdec'"):
        select_decoder("cuda", "nvdec")


def test_gpu_required_raises_naming_the_packages_where_auto_falls_back(fresh_choice):
    fresh_choice("nvimgcodec", False)
    fresh_choice("torchvision", False)
    assert select_decoder("cuda", "auto") is None
    with pytest.raises(RuntimeError, match="image_decode=gpu: no GPU JPEG decoder on cuda") as err:
        select_decoder("cuda", "gpu")
    assert "nvidia-nvimgcodec-cu12" in str(err.value)
    with pytest.raises(RuntimeError, match="no GPU JPEG decoder on cpu"):
        select_decoder("cpu", "gpu")  # no CUDA at all
    fresh_choice("torchvision", True)
    assert select_decoder("cuda", "gpu").name == "torchvision"


def test_pipeline_setting_resolution(monkeypatch):
    monkeypatch.setattr(gpu_decode, "available_decoders", lambda: ["torchvision"])
    assert resolve_image_decode("auto", "cuda") is True
    assert resolve_image_decode("auto", "cpu") is False
    assert resolve_image_decode("cpu", "cuda") is False
    assert resolve_image_decode("gpu", "cuda") is True
    monkeypatch.setattr(gpu_decode, "available_decoders", lambda: [])
    assert resolve_image_decode("auto", "cuda") is False
    with pytest.raises(ConfigError, match="compute.image_decode=gpu needs CUDA model actors"):
        resolve_image_decode("gpu", "cpu")
    with pytest.raises(ConfigError, match="compute.image_decode: must be one of"):
        resolve_image_decode("nvjpeg", "cuda")


def test_without_a_logging_handler_the_choice_goes_to_stderr(fresh_choice, monkeypatch, capsys):
    # As in a Ray worker, where no handler is configured and an INFO record would be dropped.
    monkeypatch.setattr(gpu_decode.logger, "hasHandlers", lambda: False)
    fresh_choice("torchvision", True)
    select_decoder("cuda")
    select_decoder("cuda")
    err = capsys.readouterr().err
    assert err == "[directsam] image decode: GPU (torchvision, nvJPEG) on cuda\n"
