"""Checkpoint spec -> ``SegformerForSemanticSegmentation`` with one boundary logit per pixel.

A spec is a Hugging Face hub id, a local ``save_pretrained`` directory, ``scratch:b0`` ..
``scratch:b5`` (random init with the real MiT sizes, optional ``:SEED``), ``scratch:tiny``
(a few-thousand-parameter config for tests), or ``models:/NAME/VERSION`` (an MLflow registered
model, resolved to its checkpoint directory by :func:`resolve_spec`). Weights load through
safetensors only unless the caller opts into pickle files explicitly.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

logger = logging.getLogger(__name__)

SCRATCH_PREFIX = "scratch:"
MODELS_PREFIX = "models:/"  # MLflow registry URIs (directsam.delivery.registry)
SAFE_WEIGHTS = "model.safetensors"
SAFE_WEIGHTS_INDEX = "model.safetensors.index.json"
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")

# Mix Transformer sizes from the SegFormer paper (Xie et al. 2021, Table 6) as published in the
# nvidia/mit-b* configs. Heads, sr ratios, patch sizes, strides and MLP ratios are shared.
_MIT_WIDE = [64, 128, 320, 512]
SCRATCH_SIZES: dict[str, dict[str, Any]] = {
    "b0": {"hidden_sizes": [32, 64, 160, 256], "depths": [2, 2, 2, 2], "decoder_hidden_size": 256},
    "b1": {"hidden_sizes": _MIT_WIDE, "depths": [2, 2, 2, 2], "decoder_hidden_size": 256},
    "b2": {"hidden_sizes": _MIT_WIDE, "depths": [3, 4, 6, 3], "decoder_hidden_size": 768},
    "b3": {"hidden_sizes": _MIT_WIDE, "depths": [3, 4, 18, 3], "decoder_hidden_size": 768},
    "b4": {"hidden_sizes": _MIT_WIDE, "depths": [3, 8, 27, 3], "decoder_hidden_size": 768},
    "b5": {"hidden_sizes": _MIT_WIDE, "depths": [3, 6, 40, 3], "decoder_hidden_size": 768},
    # Test-only: runs a 64 px forward pass in milliseconds on one CPU core.
    "tiny": {
        "hidden_sizes": [8, 16, 32, 64],
        "depths": [1, 1, 1, 1],
        "decoder_hidden_size": 32,
        "num_attention_heads": [1, 2, 4, 8],
    },
}
_MIT_SHARED: dict[str, Any] = {
    "num_channels": 3,
    "num_encoder_blocks": 4,
    "num_attention_heads": [1, 2, 5, 8],
    "sr_ratios": [8, 4, 2, 1],
    "patch_sizes": [7, 3, 3, 3],
    "strides": [4, 2, 2, 2],
    "mlp_ratios": [4, 4, 4, 4],
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
    "classifier_dropout_prob": 0.1,
    "drop_path_rate": 0.1,
    "layer_norm_eps": 1e-6,
    "initializer_range": 0.02,
    "semantic_loss_ignore_index": 255,
}


class PickleWeightsError(ValueError):
    """A checkpoint only has pickle weights (``pytorch_model.bin``) and pickle was not allowed."""


def parse_scratch_spec(spec: str) -> tuple[str, int]:
    """``"scratch:b0"`` -> ``("b0", 0)``; ``"scratch:b5:7"`` -> ``("b5", 7)``.

    Raises:
        ValueError: unknown size or a seed that is not a non-negative integer.
    """
    parts = spec[len(SCRATCH_PREFIX) :].split(":")
    size = parts[0]
    if size not in SCRATCH_SIZES or len(parts) > 2:
        raise ValueError(
            f"bad scratch spec {spec!r}: expected scratch:SIZE or scratch:SIZE:SEED with SIZE one "
            f"of {', '.join(SCRATCH_SIZES)}"
        )
    seed = 0
    if len(parts) == 2:
        if not parts[1].isdigit():
            raise ValueError(f"bad scratch spec {spec!r}: seed {parts[1]!r} is not an integer >= 0")
        seed = int(parts[1])
    return size, seed


def scratch_config(size: str, num_labels: int = 1) -> SegformerConfig:
    """The ``SegformerConfig`` of MiT-``size`` (b0..b5, or ``tiny``) with ``num_labels`` outputs."""
    from transformers import SegformerConfig

    if size not in SCRATCH_SIZES:
        raise ValueError(
            f"unknown SegFormer size {size!r}; expected one of {', '.join(SCRATCH_SIZES)}"
        )
    kwargs = {**_MIT_SHARED, **SCRATCH_SIZES[size]}
    return SegformerConfig(num_labels=num_labels, **kwargs)


def _build_scratch(spec: str, num_labels: int) -> SegformerForSemanticSegmentation:
    import torch
    from transformers import SegformerForSemanticSegmentation

    size, seed = parse_scratch_spec(spec)
    config = scratch_config(size, num_labels=num_labels)
    # HF initialises from torch's global RNG: seed a forked RNG so the same spec gives the same
    # weights in every process without disturbing the caller's random stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SegformerForSemanticSegmentation(config)
    return model.float().eval()


def resolve_spec(spec: str) -> str:
    """``models:/NAME/VERSION`` (MLflow registry) -> its local checkpoint directory; other specs
    unchanged. The registry is MLflow's (``MLFLOW_TRACKING_URI`` / ``MLFLOW_REGISTRY_URI``)."""
    if not spec.startswith(MODELS_PREFIX):
        return spec
    from directsam.delivery.registry import resolve_model_uri

    return str(resolve_model_uri(spec))


def _weights_in_dir(directory: Path) -> tuple[list[Path], list[Path]]:
    safe = [directory / n for n in (SAFE_WEIGHTS, SAFE_WEIGHTS_INDEX) if (directory / n).is_file()]
    pickle = [directory / n for n in PICKLE_WEIGHTS if (directory / n).is_file()]
    return safe, pickle


def _pickle_refused(where: str) -> PickleWeightsError:
    return PickleWeightsError(
        f"{where} has only pickle weights (pytorch_model.bin) and no model.safetensors; pickle "
        "files can run arbitrary code when loaded. Convert the checkpoint to safetensors, or pass "
        "allow_pickle=True (--allow-pickle) if you trust its source."
    )


def load_model(
    spec: str, *, allow_pickle: bool = False, num_labels: int = 1
) -> SegformerForSemanticSegmentation:
    """Build or load a SegFormer boundary model: float32, in eval mode (``.train()`` to tune).

    Args:
        spec: hub id (``chendelong/DirectSAM-1800px-0424``,
            ``nvidia/segformer-b0-finetuned-cityscapes-1024-1024``), a local directory written by
            ``save_pretrained``/``save_checkpoint``, ``scratch:b0``..``scratch:b5[:SEED]`` or
            ``scratch:tiny[:SEED]``.
        allow_pickle: permit ``pytorch_model.bin`` (pickle) weights when no safetensors exist.
        num_labels: output channels; a checkpoint with another head size (Cityscapes' 19)
            gets a freshly initialised ``num_labels``-way classifier (seeded, logged).

    Returns:
        ``SegformerForSemanticSegmentation`` whose forward gives ``(B, num_labels, H/4, W/4)``
        logits for ``(B, 3, H, W)`` normalised pixels.

    Raises:
        PickleWeightsError: only pickle weights exist and ``allow_pickle`` is False.
        ValueError: malformed scratch spec or unsupported scheme.
        OSError: the directory / hub repo cannot be read.
    """
    if spec.startswith(SCRATCH_PREFIX):
        return _build_scratch(spec, num_labels)
    spec = resolve_spec(spec)

    import torch
    import transformers
    from transformers import SegformerForSemanticSegmentation

    # transformers 5 loads in the stored dtype by default; pin float32 (4.x: the default).
    dtype_kwargs = (
        {"dtype": torch.float32} if int(transformers.__version__.split(".")[0]) >= 5 else {}
    )
    use_safetensors: bool | None = True
    path = Path(spec).expanduser()
    if path.is_dir():
        safe, pickle = _weights_in_dir(path)
        if not safe and pickle:
            if not allow_pickle:
                raise _pickle_refused(f"checkpoint directory {path}")
            use_safetensors = False
        elif not safe:
            raise OSError(f"checkpoint directory {path} has no {SAFE_WEIGHTS}")
        source = str(path)
    elif spec.startswith((".", "/", "~")) or spec.count("/") != 1:
        raise FileNotFoundError(
            f"checkpoint {spec!r} is not a directory, and not a hub id of the form owner/name"
        )
    else:
        source = spec
        # None lets HF prefer safetensors and fall back to pickle; True refuses pickle.
        use_safetensors = True if not allow_pickle else None

    # The seed makes the re-initialised classifier (for a head-size mismatch) reproducible.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        try:
            model, info = SegformerForSemanticSegmentation.from_pretrained(
                source,
                num_labels=num_labels,
                ignore_mismatched_sizes=True,
                use_safetensors=use_safetensors,
                output_loading_info=True,
                **dtype_kwargs,
            )
        except OSError as err:
            if use_safetensors and source == spec and "safetensors" in str(err):
                raise _pickle_refused(f"hub repo {spec}") from err
            raise
    reinit = sorted({k[0] for k in info.get("mismatched_keys", ())} | set(info["missing_keys"]))
    if reinit:
        logger.warning(
            "%s: re-initialised %d tensors whose shapes differ from num_labels=%d or that are "
            "missing: %s",
            spec,
            len(reinit),
            num_labels,
            ", ".join(reinit),
        )
    return model.float().eval()


def _sha256_files(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for file in files:
        with open(file, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def _weight_files(directory: Path) -> list[Path]:
    """The weight files that define a checkpoint directory's tensors, in a stable order."""
    if (directory / SAFE_WEIGHTS).is_file():
        return [directory / SAFE_WEIGHTS]
    shards = sorted(directory.glob("model-*-of-*.safetensors"))
    if shards:
        return shards
    return [directory / n for n in PICKLE_WEIGHTS[:1] if (directory / n).is_file()] + sorted(
        directory.glob("pytorch_model-*-of-*.bin")
    )


def _hub_weight_files(repo_id: str) -> list[Path]:
    from huggingface_hub import try_to_load_from_cache

    for name in (SAFE_WEIGHTS, PICKLE_WEIGHTS[0]):
        cached = try_to_load_from_cache(repo_id, name)
        if isinstance(cached, str):
            return [Path(cached)]
    # A sharded hub checkpoint: the shards sit beside the cached index file.
    index = try_to_load_from_cache(repo_id, SAFE_WEIGHTS_INDEX)
    if isinstance(index, str):
        return sorted(Path(index).parent.glob("model-*-of-*.safetensors"))
    return []


def tensors_sha(model: Any) -> str:
    """``tensors:<16 hex>``: sha256 over a model's state dict (names, dtypes, shapes, bytes)."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.view(-1).view(torch.uint8).numpy().tobytes())
    return "tensors:" + digest.hexdigest()[:16]


def checkpoint_sha(spec: str, source: str | os.PathLike[str] | Any | None = None) -> str:
    """Identify the weights behind ``spec`` (the shard/MLflow ``checkpoint_sha`` value).

    Args:
        spec: the checkpoint spec as given to :func:`load_model`.
        source: optional directory holding the weights (defaults to ``spec`` when that is a
            directory, else the hub cache), or the loaded model, used only when no weight file
            can be found (e.g. a hub checkpoint served from a converted-safetensors branch).

    Returns:
        ``scratch:<size>:<seed>`` for scratch specs; else the first 16 hex digits of the
        sha256 of ``model.safetensors`` (all shards, in order, when sharded); else, given a
        model, :func:`tensors_sha` of it.

    Raises:
        FileNotFoundError: no weight file can be found and no model was given.
    """
    if spec.startswith(SCRATCH_PREFIX):
        size, seed = parse_scratch_spec(spec)
        return f"scratch:{size}:{seed}"
    spec = resolve_spec(spec)
    directory: Path | None = None
    if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        directory = Path(source)
    elif Path(spec).expanduser().is_dir():
        directory = Path(spec).expanduser()
    files = _weight_files(directory) if directory is not None else _hub_weight_files(spec)
    if files:
        return _sha256_files(files)
    if hasattr(source, "state_dict"):
        return tensors_sha(source)
    raise FileNotFoundError(f"no weight file found for checkpoint {spec!r}")
