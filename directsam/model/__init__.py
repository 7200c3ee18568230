"""Build, load and save SegFormer boundary models (hub id, local directory, ``scratch:b0``..``b5``)."""

from directsam.model.build import (
    SCRATCH_SIZES,
    PickleWeightsError,
    checkpoint_sha,
    load_model,
    parse_scratch_spec,
    scratch_config,
    tensors_sha,
)
from directsam.model.checkpoint import META_FILE, read_meta, save_checkpoint

__all__ = [
    "META_FILE",
    "SCRATCH_SIZES",
    "PickleWeightsError",
    "checkpoint_sha",
    "load_model",
    "parse_scratch_spec",
    "read_meta",
    "save_checkpoint",
    "scratch_config",
    "tensors_sha",
]
