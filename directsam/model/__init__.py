"""Build, load and save SegFormer boundary models; checkpoint specs (hub id, local directory,
``scratch:b0``..``b5``, ``models:/NAME/VERSION``) are owned by :mod:`directsam.model.spec`."""

from directsam.model.build import PickleWeightsError, load_model, scratch_config
from directsam.model.checkpoint import META_FILE, read_meta, save_checkpoint
from directsam.model.spec import (
    SCRATCH_SIZES,
    check_spec,
    checkpoint_sha,
    parse_scratch_spec,
    read_checkpoint_meta,
    resolve_spec,
    tensors_sha,
)

__all__ = [
    "META_FILE",
    "SCRATCH_SIZES",
    "PickleWeightsError",
    "check_spec",
    "checkpoint_sha",
    "load_model",
    "parse_scratch_spec",
    "read_checkpoint_meta",
    "read_meta",
    "resolve_spec",
    "save_checkpoint",
    "scratch_config",
    "tensors_sha",
]
