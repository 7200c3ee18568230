"""Checkpoint spec -> ``SegformerForSemanticSegmentation`` with one boundary logit per pixel.

A spec is a Hugging Face hub id, a local ``save_pretrained`` directory, ``scratch:b0`` ..
``scratch:b5`` (random init with the real MiT sizes, optional ``:SEED``), ``scratch:tiny``
(a few-thousand-parameter config for tests), or ``models:/NAME/VERSION`` (an MLflow registered
model, resolved to its checkpoint directory); :mod:`directsam.model.spec` owns those rules.
Weights load through safetensors only unless the caller opts into pickle files explicitly.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from directsam.model.spec import (
    SAFE_WEIGHTS,
    SCRATCH_PREFIX,
    SCRATCH_SIZES,
    is_hub_id,
    parse_scratch_spec,
    resolve_spec,
    weights_in_dir,
)

if TYPE_CHECKING:
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

logger = logging.getLogger(__name__)

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
        safe, pickle = weights_in_dir(path)
        if not safe and pickle:
            if not allow_pickle:
                raise _pickle_refused(f"checkpoint directory {path}")
            use_safetensors = False
        elif not safe:
            raise OSError(f"checkpoint directory {path} has no {SAFE_WEIGHTS}")
        source = str(path)
    elif not is_hub_id(spec):
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
