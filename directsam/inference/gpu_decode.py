"""GPU JPEG decoders: which images qualify, EXIF orientation on tensors, run-time choice.

At GPU rates the CPU side decides throughput: decoding and resizing an SA-1B-sized JPEG costs
~38 CPU-ms at 1024 px (benchmarks/results/cpu_budget.md), so B0 at 1024 px (850 img/s per GPU)
would need ~32 cores for decode and resize alone. With this module the labeling actor receives
the JPEG bytes, decodes them with nvJPEG and resizes them on the device
(:mod:`directsam.inference.bytes_input`).

Decoders, chosen at run time by :func:`select_decoder` (the choice is logged once per process):

* ``nvimgcodec``: NVIDIA nvImageCodec (``pip install nvidia-nvimgcodec-cu12``, module
  ``nvidia.nvimgcodec``), nvJPEG with the hardware JPEG engines of A100/H100 where present;
* ``torchvision``: ``torchvision.io.decode_jpeg(..., device="cuda")`` (nvJPEG), when a
  torchvision built for the installed torch imports;
* none: the CPU path (Pillow, :func:`directsam.data.decode.decode_image`), as before.

Only plain JPEGs go to the GPU (:func:`gpu_decodable`: baseline or extended-sequential Huffman,
8-bit, grayscale or YCbCr, ending in an EOI marker). Everything else (PNG, progressive or
arithmetic-coded JPEG, CMYK/YCCK, 12-bit, truncated data, trailing bytes after EOI) and every
image the GPU decoder fails on is decoded on the CPU exactly as before, so a bad image is still
one failed row with the same ``"<code>: <detail>"``. The EXIF orientation is read from the
header by Pillow and applied on the device with the same flips and transposes as
``PIL.ImageOps.exif_transpose``. nvJPEG's IDCT and chroma upsampling differ from libjpeg-turbo
by a few grey levels, and the device resize (antialiased bilinear, rounded to the uint8 grid)
differs from Pillow's by about one level: GPU-decoded pixels are close to, not equal to, the
CPU path's.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

IMAGE_DECODE_CHOICES = ("auto", "cpu", "gpu")
# The package each decoder needs, in the order "auto" tries them.
DECODER_PACKAGES = {
    "nvimgcodec": "nvidia-nvimgcodec-cu12",
    "torchvision": "torchvision (built for the installed torch)",
}

_EOI = b"\xff\xd9"
_PLAIN_SOF = (0xC0, 0xC1)  # baseline, extended sequential (Huffman)
_logged: set[str] = set()


def _log_once(key: str, message: str, level: int = logging.INFO) -> None:
    """Log ``message`` the first time ``key`` is seen in this process.

    Ray worker processes configure no logging handler (an INFO record would be dropped), so
    without one the message goes to stderr, which Ray forwards to the driver's log.
    """
    if key in _logged:
        return
    _logged.add(key)
    if logger.hasHandlers():
        logger.log(level, message)
    else:
        print(f"[directsam] {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- eligibility


@dataclass(frozen=True)
class JpegFrame:
    """The frame header of a JPEG: SOF marker (0xC0..0xCF), sample precision, size, components,
    and the Adobe APP14 colour transform when present (0: RGB/CMYK, 1: YCbCr, 2: YCCK)."""

    marker: int
    precision: int
    height: int
    width: int
    components: int
    adobe_transform: int | None


def scan_jpeg(data: bytes) -> JpegFrame | None:
    """Walk the JPEG markers up to the first frame header; None if ``data`` is no JPEG.

    Reads only the header segments (a few hundred bytes for a camera JPEG), never the
    entropy-coded data.
    """
    if len(data) < 4 or data[:2] != b"\xff\xd8":
        return None
    pos, adobe = 2, None
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # standalone markers, no length
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 2 or pos + 2 + length > len(data):
            return None
        body = data[pos + 4 : pos + 2 + length]
        if marker == 0xEE and body[:5] == b"Adobe" and len(body) >= 12:
            adobe = body[11]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if len(body) < 6:
                return None
            return JpegFrame(
                marker=marker,
                precision=body[0],
                height=int.from_bytes(body[1:3], "big"),
                width=int.from_bytes(body[3:5], "big"),
                components=body[5],
                adobe_transform=adobe,
            )
        if marker in (0xDA, 0xD9):  # scan or end before any frame header
            return None
        pos += 2 + length
    return None


def gpu_decodable(data: bytes) -> bool:
    """True for a plain JPEG the GPU decoders turn into the same image Pillow does.

    Plain: baseline or extended-sequential Huffman coding, 8-bit samples, 1 (gray) or 3
    (YCbCr) components, not Adobe-RGB coded, and the data ends with the EOI marker (nvJPEG
    fills a truncated scan with grey where Pillow reports "truncated image data").
    """
    frame = scan_jpeg(data)
    if frame is None or not data.endswith(_EOI):
        return False
    if frame.marker not in _PLAIN_SOF or frame.precision != 8 or frame.components not in (1, 3):
        return False
    if frame.height < 1 or frame.width < 1:
        return False
    return not (frame.components == 3 and frame.adobe_transform == 0)


# ----------------------------------------------------------------------------- orientation


def apply_orientation(image: torch.Tensor, orientation: int) -> torch.Tensor:
    """Turn an ``(H, W, C)`` tensor upright as EXIF ``orientation`` says (any device).

    The same transforms as ``PIL.ImageOps.exif_transpose`` (whose rotations are counter-
    clockwise): 2 mirror, 3 rotate 180, 4 flip, 5 transpose, 6 rotate 270, 7 transverse,
    8 rotate 90. Returns a view where possible; 1 (or anything else) returns ``image``.
    """
    import torch

    if orientation == 2:
        return torch.flip(image, dims=(1,))
    if orientation == 3:
        return torch.flip(image, dims=(0, 1))
    if orientation == 4:
        return torch.flip(image, dims=(0,))
    if orientation == 5:
        return image.transpose(0, 1)
    if orientation == 6:
        return torch.rot90(image, k=-1, dims=(0, 1))
    if orientation == 7:
        return torch.flip(image.transpose(0, 1), dims=(0, 1))
    if orientation == 8:
        return torch.rot90(image, k=1, dims=(0, 1))
    return image


# ----------------------------------------------------------------------------- decoders


class NvImgCodecDecoder:
    """Batched nvJPEG decode through nvImageCodec; failed images come back as None."""

    name = "nvimgcodec"

    def __init__(self, device: torch.device):
        from nvidia import nvimgcodec

        self.device = device
        index = device.index if device.index is not None else 0
        kinds = nvimgcodec.BackendKind
        # Without a backend list nvImageCodec picks the hybrid backend, which runs the
        # Huffman decode on the CPU; the hardware engines (A100/H100) come first. One CPU
        # helper thread: the actor holds one CPU, and nvImageCodec 0.9's hybrid backend is
        # reported to hang on one-image batches with more (vLLM's nvimgcodec integration).
        self._decoder = nvimgcodec.Decoder(
            device_id=index,
            max_num_cpu_threads=1,
            backends=[
                nvimgcodec.Backend(kinds.HW_GPU_ONLY),
                nvimgcodec.Backend(kinds.GPU_ONLY),
                nvimgcodec.Backend(kinds.HYBRID_CPU_GPU),
            ],
        )
        # Orientation is applied by apply_orientation, from Pillow's reading of the EXIF tag.
        self._params = nvimgcodec.DecodeParams(
            apply_exif_orientation=False,
            color_spec=nvimgcodec.ColorSpec.SRGB,
            allow_any_depth=False,
            sample_format=nvimgcodec.SampleFormat.I_RGB,
        )

    def decode(self, blobs: Sequence[bytes]) -> list[torch.Tensor | None]:
        """uint8 ``(H, W, 3)`` tensors on the device (None where nvImageCodec failed)."""
        import torch

        stream = torch.cuda.current_stream(self.device).cuda_stream
        images = self._decoder.decode(list(blobs), params=self._params, cuda_stream=stream)
        out: list[torch.Tensor | None] = []
        for image in images:
            out.append(None if image is None else torch.from_dlpack(image))
        return out


class TorchvisionDecoder:
    """Batched nvJPEG decode through ``torchvision.io.decode_jpeg(device=...)``."""

    name = "torchvision"

    def __init__(self, device: torch.device):
        from torchvision.io import ImageReadMode, decode_jpeg

        self.device = device
        self._decode_jpeg = decode_jpeg
        self._mode = ImageReadMode.RGB

    def _one(self, blob: bytes) -> torch.Tensor | None:
        import torch

        try:
            data = torch.frombuffer(bytearray(blob), dtype=torch.uint8)
            return self._decode_jpeg(data, mode=self._mode, device=self.device).permute(1, 2, 0)
        except Exception:  # noqa: BLE001 - the caller decodes this one on the CPU
            return None

    def decode(self, blobs: Sequence[bytes]) -> list[torch.Tensor | None]:
        """uint8 ``(H, W, 3)`` tensors on the device (None where nvJPEG failed)."""
        import torch

        try:
            data = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in blobs]
            images = self._decode_jpeg(data, mode=self._mode, device=self.device)
        except Exception:  # noqa: BLE001 - one bad image fails the batch: isolate it
            return [self._one(b) for b in blobs]
        return [image.permute(1, 2, 0) for image in images]


JpegDecoder = NvImgCodecDecoder | TorchvisionDecoder


def _nvimgcodec_importable() -> bool:
    try:
        importlib.import_module("nvidia.nvimgcodec")
    except Exception:  # noqa: BLE001 - missing, or a wheel for another CUDA
        return False
    return True


def _torchvision_importable() -> bool:
    try:
        importlib.import_module("torchvision.io").decode_jpeg  # noqa: B018 - the check
    except Exception:  # noqa: BLE001 - missing, or built for another torch (op load error)
        return False
    return True


def _cuda_ready(device: torch.device) -> bool:
    import torch

    return device.type == "cuda" and torch.cuda.is_available()


# name -> (availability check, constructor); tests replace entries.
DECODERS: dict[str, tuple[Callable[[], bool], Callable[[Any], Any]]] = {
    "nvimgcodec": (_nvimgcodec_importable, NvImgCodecDecoder),
    "torchvision": (_torchvision_importable, TorchvisionDecoder),
}


def available_decoders() -> list[str]:
    """Names of the GPU decoders whose package imports in this process (CUDA not checked)."""
    return [name for name, (check, _) in DECODERS.items() if check()]


def select_decoder(device: str | torch.device, prefer: str = "auto") -> JpegDecoder | None:
    """The GPU JPEG decoder for ``device``, or None for the CPU path; logged once per process.

    Args:
        device: the model's device; anything but an available CUDA device means None.
        prefer: ``auto`` (nvimgcodec, then torchvision), ``gpu`` (the same, but required), a
            decoder name, or ``cpu``.

    Returns:
        A decoder with ``.name`` and ``.decode(list[bytes]) -> list[uint8 (H, W, 3) | None]``,
        or None. A decoder whose construction fails is skipped (logged), never raised.

    Raises:
        RuntimeError: ``prefer="gpu"`` and no GPU decoder works on ``device``.
    """
    import torch

    device = torch.device(device)
    if prefer == "cpu":
        _log_once("cpu", "image decode: CPU (Pillow), as configured")
        return None
    names = list(DECODERS) if prefer in ("auto", "gpu") else [prefer]
    if not _cuda_ready(device):
        if prefer == "gpu":
            raise RuntimeError(_required_message(device, names))
        _log_once("no-cuda", f"image decode: CPU (Pillow): model device {device} is not CUDA")
        return None
    missing = []
    for name in names:
        if name not in DECODERS:
            raise ValueError(f"unknown GPU decoder {name!r}; expected one of {list(DECODERS)}")
        check, build = DECODERS[name]
        if not check():
            missing.append(DECODER_PACKAGES[name])
            continue
        try:
            decoder = build(device)
        except Exception as err:  # noqa: BLE001 - fall through to the next decoder / CPU
            _log_once(
                f"fail-{name}",
                f"image decode: {name} unusable on {device} ({type(err).__name__}: {err})",
                logging.WARNING,
            )
            continue
        _log_once(f"gpu-{name}", f"image decode: GPU ({name}, nvJPEG) on {device}")
        return decoder
    if prefer == "gpu":
        raise RuntimeError(_required_message(device, names))
    _log_once(
        "no-package",
        f"image decode: CPU (Pillow): no GPU JPEG decoder on {device} "
        f"(install {' or '.join(missing) or 'a working one'})",
        logging.WARNING,
    )
    return None


def _required_message(device: Any, names: list[str]) -> str:
    packages = " or ".join(DECODER_PACKAGES[n] for n in names)
    return (
        f"--set compute.image_decode=gpu: no GPU JPEG decoder on {device} (install {packages}"
        ", or use auto/cpu)"
    )


def resolve_image_decode(setting: str, device: str) -> bool:
    """Whether the labeling actors receive compressed bytes and decode them (the GPU path).

    ``cpu``: no (CPU tasks decode and resize, as before). ``gpu``: yes; needs CUDA actors.
    ``auto``: yes when the actors run on CUDA and a GPU decoder package imports here (the
    driver; the cluster image is the same on every node). An actor without one still decodes
    correctly, on its own CPU.

    Raises:
        ConfigError: ``gpu`` with CPU actors, or an unknown setting.
    """
    from directsam.config import ConfigError

    if setting not in IMAGE_DECODE_CHOICES:
        raise ConfigError(
            f"--set compute.image_decode: must be one of {', '.join(IMAGE_DECODE_CHOICES)}, "
            f"got {setting!r}"
        )
    if setting == "gpu" and device != "cuda":
        raise ConfigError(
            "--set compute.image_decode=gpu needs CUDA model actors (--device cuda on a "
            "cluster with GPUs); use auto or cpu"
        )
    if setting == "auto":
        return device == "cuda" and bool(available_decoders())
    return setting == "gpu"
