"""Images or normalised pixels -> boundary probabilities, with a model loaded once per process.

``BoundaryPredictor`` is the model-holding step of every inference path: the labeling actors,
evaluation and ``directsam predict`` construct one and call it per batch. It owns device and
dtype choice, channels_last, optional ``torch.compile`` and batch splitting.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from directsam.inference.preprocess import preprocess_images
from directsam.inference.pyramid import pyramid_predict
from directsam.model.spec import DEFAULT_RESOLUTION

if TYPE_CHECKING:
    import torch

# Kernels such as upsample_bilinear2d_nhwc index their output with int32: one call may produce
# at most INT_MAX elements (B5 at 1800 px fails at batch 16 in channels_last).
INT32_MAX = 2**31 - 1

_DTYPE_NAMES = {
    "fp32": "float32",
    "float32": "float32",
    "fp16": "float16",
    "float16": "float16",
    "half": "float16",
    "bf16": "bfloat16",
    "bfloat16": "bfloat16",
}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> ``cuda`` when available, else ``cpu``; other values pass to ``torch.device``."""
    import torch

    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """``"auto"`` -> bf16 on CUDA with bf16 support, fp16 on older CUDA GPUs, fp32 elsewhere.

    Raises:
        ValueError: an unknown dtype name.
    """
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if dtype not in _DTYPE_NAMES:
        raise ValueError(f"unknown dtype {dtype!r}; expected auto, fp32, fp16 or bf16")
    return getattr(torch, _DTYPE_NAMES[dtype])


def max_batch_for(resolution: int, decoder_hidden_size: int) -> int:
    """Largest batch whose decode-head upsample output stays below INT_MAX elements.

    The decode head upsamples each stage's ``decoder_hidden_size``-channel projection to the
    stride-4 grid, ``ceil(R/4) x ceil(R/4)``: ``B * C * ceil(R/4)^2`` must stay < 2**31.
    """
    per_image = decoder_hidden_size * math.ceil(resolution / 4) ** 2
    return max(1, INT32_MAX // per_image)


class BoundaryPredictor:
    """A SegFormer boundary model ready for batched inference.

    Args:
        checkpoint: spec for :func:`directsam.model.load_model` (hub id, directory, scratch:*).
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:1"`` ...
        dtype: ``"auto"`` (bf16 on CUDA when supported, else fp16; fp32 on CPU), ``"fp32"``,
            ``"fp16"`` or ``"bf16"``. Weights are cast and the forward runs under autocast.
        resolution: side ``R`` of the square model input.
        compile: wrap the model in ``torch.compile`` (first call per batch size compiles).
        channels_last: run convolutions in NHWC (faster on tensor-core GPUs).
        max_batch: split larger batches; always capped so the decode-head upsample stays
            below INT_MAX elements (chunks are made equal-sized to limit recompiles).
        allow_pickle: let :func:`load_model` read ``pytorch_model.bin`` weights.

    Attributes:
        model: the eval-mode HF model. checkpoint_sha: weights id (see
            :func:`directsam.model.checkpoint_sha`). meta: the checkpoint's ``directsam.json``.
    """

    def __init__(
        self,
        checkpoint: str,
        device: str | torch.device = "auto",
        dtype: str | torch.dtype = "auto",
        resolution: int = DEFAULT_RESOLUTION,
        compile: bool = False,
        channels_last: bool = True,
        max_batch: int | None = None,
        allow_pickle: bool = False,
    ):
        import torch

        from directsam.model.build import load_model
        from directsam.model.spec import checkpoint_sha, read_checkpoint_meta

        if resolution < 32:
            raise ValueError(f"resolution must be >= 32 (SegFormer stride), got {resolution}")
        if max_batch is not None and max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.checkpoint = checkpoint
        self.resolution = int(resolution)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.channels_last = channels_last
        model = load_model(checkpoint, allow_pickle=allow_pickle)
        # Before any dtype cast: a tensor-hash fallback must see the stored float32 weights.
        self.checkpoint_sha = checkpoint_sha(checkpoint, model)
        model.eval()
        model.to(device=self.device, dtype=self.dtype)
        if channels_last:
            model.to(memory_format=torch.channels_last)
        self.model = model
        self._forward = torch.compile(model) if compile else model
        limit = max_batch_for(self.resolution, model.config.decoder_hidden_size)
        self.max_batch = min(max_batch, limit) if max_batch is not None else limit
        self.meta = read_checkpoint_meta(checkpoint)
        self._decoders: dict[str, Any] = {}  # predict_bytes: image_decode -> GPU decoder | None

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        import torch

        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def predict_logits(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Raw model logits, the batch split into equal chunks of at most ``max_batch``.

        Args:
            pixel_values: float ``(B, 3, R, R)`` normalised pixels (any device/dtype).

        Returns:
            float32 tensor ``(B, 1, ceil(R/4), ceil(R/4))`` on the model's device.
        """
        import torch

        batch = pixel_values.shape[0]
        chunks = math.ceil(batch / self.max_batch)
        step = math.ceil(batch / chunks)
        out = []
        with torch.inference_mode():
            for start in range(0, batch, step):
                x = pixel_values[start : start + step].to(self.device, dtype=self.dtype)
                if self.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                with self._autocast():
                    out.append(self._forward(pixel_values=x).logits.float())
        return torch.cat(out)

    def predict_pixels(
        self, pixel_values: torch.Tensor, out_size: int | tuple[int, int] | None = None
    ) -> torch.Tensor:
        """Boundary probabilities for normalised pixels.

        Args:
            pixel_values: float ``(B, 3, R, R)`` from :func:`preprocess_images`.
            out_size: output side ``S`` or ``(H, W)``; default the input size. Logits are
                upsampled bilinearly (align_corners=False) in float32 before the sigmoid.

        Returns:
            float32 tensor ``(B, S, S)`` (or ``(B, H, W)``) in [0, 1], on the model's device.
        """
        import torch
        import torch.nn.functional as F

        if pixel_values.ndim != 4 or pixel_values.shape[1] != 3:
            raise ValueError(f"expected (B, 3, H, W) pixels, got {tuple(pixel_values.shape)}")
        size = out_size if out_size is not None else tuple(pixel_values.shape[-2:])
        size = (size, size) if isinstance(size, int) else tuple(size)
        if pixel_values.shape[0] == 0:
            return torch.empty((0, *size), dtype=torch.float32, device=self.device)
        logits = self.predict_logits(pixel_values)
        with torch.inference_mode():
            # Upsample in chunks of max_batch: the same INT_MAX output limit applies here.
            out = [
                torch.sigmoid(
                    F.interpolate(part, size=size, mode="bilinear", align_corners=False)[:, 0]
                )
                for part in logits.split(self.max_batch)
            ]
        return torch.cat(out)

    def predict_native(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Probabilities for each image at its own size (logits upsampled to ``(H_i, W_i)``).

        Args:
            images: RGB uint8 ``(H_i, W_i, 3)`` arrays.

        Returns:
            list of float32 ``(H_i, W_i)`` arrays in [0, 1].
        """
        import torch
        import torch.nn.functional as F

        if not images:
            return []
        logits = self.predict_logits(preprocess_images(images, self.resolution, device=self.device))
        out = []
        with torch.inference_mode():
            for image, logit in zip(images, logits):
                up = F.interpolate(
                    logit[None], size=image.shape[:2], mode="bilinear", align_corners=False
                )
                out.append(torch.sigmoid(up[0, 0]).cpu().numpy())
        return out

    def predict_bytes(
        self,
        blobs: Sequence[bytes],
        names: Sequence[str] | None = None,
        out_size: int | tuple[int, int] | None = None,
        image_decode: str = "auto",
    ) -> tuple[np.ndarray, list[str | None]]:
        """Boundary probabilities for encoded images, decoded on the model's device if possible.

        Plain JPEGs are decoded by nvJPEG when the device is CUDA and a decoder package is
        installed (``image_decode="auto"``), everything else by Pillow
        (:mod:`directsam.inference.bytes_input`).

        Args:
            blobs: encoded images. names: per image a name for error messages.
            out_size: output side ``S`` or ``(H, W)``; default the model resolution.
            image_decode: ``auto``, ``gpu`` (a GPU decoder is required: RuntimeError
                without one) or ``cpu`` (Pillow only).

        Returns:
            (float32 ``(B, S, S)`` probabilities, zeros for images that failed to decode;
            per image None or ``"<code>: <detail>"``).
        """
        from directsam.inference.bytes_input import bytes_to_pixels
        from directsam.inference.gpu_decode import select_decoder

        if image_decode not in self._decoders:
            self._decoders[image_decode] = select_decoder(self.device, image_decode)
        names = list(names) if names is not None else [f"<image {i}>" for i in range(len(blobs))]
        dec = bytes_to_pixels(
            blobs, names, self.resolution, self.device, self._decoders[image_decode]
        )
        size = out_size if out_size is not None else self.resolution
        probs = self.predict_pixels(dec.pixels, size).cpu().numpy()
        probs[[i for i, e in enumerate(dec.errors) if e]] = 0.0
        return probs, dec.errors

    def predict(
        self,
        images: Sequence[np.ndarray],
        out_size: int | tuple[int, int] | None = None,
        pyramid: bool = False,
        pyramid_layers: int = 1,
    ) -> np.ndarray:
        """Boundary probabilities for RGB images.

        Args:
            images: RGB uint8 ``(H, W, 3)`` arrays, sizes may differ.
            out_size: output side ``S`` or ``(H, W)``; default the model resolution.
            pyramid: average the global map with ``pyramid_layers`` layers of overlapping crops
                (see :mod:`directsam.inference.pyramid`); costs ``1 + 4 + 16 ...`` forwards.

        Returns:
            float32 array ``(B, S, S)`` (or ``(B, H, W)``) in [0, 1].
        """
        import torch
        import torch.nn.functional as F

        size = out_size if out_size is not None else self.resolution
        if not pyramid:
            pixels = preprocess_images(images, self.resolution, device=self.device)
            return self.predict_pixels(pixels, size).cpu().numpy()
        size = (size, size) if isinstance(size, int) else tuple(size)
        maps = []
        for image in images:
            full = pyramid_predict(
                self.predict_native, image, self.resolution, layers=pyramid_layers
            )
            resized = F.interpolate(
                torch.from_numpy(full)[None, None], size=size, mode="bilinear", align_corners=False
            )
            maps.append(resized[0, 0].numpy())
        if not maps:
            return np.zeros((0, *size), dtype=np.float32)
        return np.stack(maps).astype(np.float32, copy=False)
