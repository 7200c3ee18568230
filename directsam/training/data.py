"""Training input: source or merged-label rows -> Ray Datasets of ``image`` + ``target`` (uint8).

Driver side, :func:`build_datasets` returns the train and held-out datasets: source rows
(``directsam.data.sources.read_source``: SA-1B tars streamed whole, one GET per tar, in a
seeded order per epoch) or merged labels (``directsam.data.sources.shards``) decoded by
``directsam.data.targets.decode_rows`` in CPU tasks, bad rows dropped. Worker side,
:func:`to_model_input` turns a uint8 batch on the GPU into normalised (optionally augmented)
model input, so the host ships 4x fewer bytes than float pixels and spends no CPU on it.

Targets are built on the fly, chosen by measurement (``benchmarks/train_throughput.py``, one
CPU thread, SA-1B-sized 1500x2250 image with 100 masks, 1024 px target): the target costs
~50 ms against ~60 ms for decoding + resizing the JPEG that every path pays, and ~5 ms when a
cached RLE target is decoded instead. A cache would save ~40% of the per-image CPU at the
price of an extra full pass over SA-1B and storage keyed by (dataset, resolution, thickness);
at stage-1 speeds (B5 at 1800 px, ~10 img/s per GPU) on-the-fly needs ~1 core per GPU. Stage 3
reads merged labels that are stored as RLE at the training resolution (the cached path by
construction). Details in docs/TRAINING.md.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from directsam.schema import DATASET, ERROR, IMAGE_ID

if TYPE_CHECKING:
    import ray.data
    import torch

    from directsam.training.config import TrainConfig

logger = logging.getLogger(__name__)

IMAGE = "image"  # uint8 (R, R, 3)
TARGET = "target"  # uint8 (R, R): 1 boundary, 0 not, 255 ignored


def training_rows(
    batch: dict[str, np.ndarray], resolution: int, thickness: int
) -> dict[str, np.ndarray]:
    """Batch function: source rows -> ``{image, target}`` of the rows that decoded cleanly.

    Rows that failed (unreadable image, bad annotation) or have no annotation are dropped and
    logged with their reason; training never sees a zero-filled placeholder.

    Returns:
        ``image`` uint8 (N, R, R, 3) and ``target`` uint8 (N, R, R), N <= len(batch).
    """
    from directsam.data.targets import HAS_TARGET, decode_rows

    out = decode_rows(batch, resolution, thickness, keep_image=True)
    keep = np.array([e is None for e in out[ERROR]], dtype=bool) & out[HAS_TARGET]
    for i in np.flatnonzero(~keep):
        reason = out[ERROR][i] or "no annotation"
        logger.warning("training: skipped %s: %s", out[IMAGE_ID][i], reason)
    return {IMAGE: out[IMAGE][keep], TARGET: out[TARGET][keep]}


def _split_filter(batch: dict[str, np.ndarray], val_keys: set, want_val: bool) -> dict:
    keys = zip(batch[DATASET], batch[IMAGE_ID])
    keep = np.array([((str(d), str(i)) in val_keys) == want_val for d, i in keys], dtype=bool)
    return {k: v[keep] for k, v in batch.items()}


def _source_rows(cfg: TrainConfig, split: str, num_samples: int | None) -> ray.data.Dataset:
    """Source rows of one split. Tar sources stream each tar once per epoch, in a seeded order
    that changes every epoch (a file-level shuffle; the worker's local shuffle buffer,
    ``data.shuffle_buffer``, mixes the rows of the tars it reads at once)."""
    from directsam.data.sources import read_source

    train = split == "train"
    # The job's split is structural (train, and val for validation), whatever the spec says.
    spec = replace(cfg.source, split=split, num_samples=num_samples,
                   seed=cfg.source.seed if train else None)  # fmt: skip
    return read_source(spec, shuffle_seed=cfg.optim.seed if train else None)


def _merged_rows(cfg: TrainConfig, split: str, num_samples: int | None) -> ray.data.Dataset:
    from directsam.data.sources.shards.counts import shard_val_keys
    from directsam.data.sources.shards.merged import read_merged_labels

    d, shards = cfg.data, cfg.source.input
    ds = read_merged_labels(shards, d.resolution, d.labels_checkpoint, with_images=True)
    val_keys = shard_val_keys(shards, d.labels_checkpoint)
    ds = ds.map_batches(
        _split_filter, fn_kwargs={"val_keys": val_keys, "want_val": split == "val"}, batch_size=256
    )
    return ds.limit(num_samples) if num_samples is not None else ds


def build_datasets(cfg: TrainConfig) -> tuple[ray.data.Dataset, ray.data.Dataset | None]:
    """Train and validation datasets of ``{image: uint8 (R,R,3), target: uint8 (R,R)}`` rows.

    ``shards`` sources read merged labels (pseudo OR human); every other source builds targets
    from its annotations at ``data.thickness``. The validation dataset is the first
    ``validation.num_images`` of the held-out split (SA-1B / shards: last 1% of sorted ids;
    other sources have no held-out split here, so validation is off) or None.
    """
    d, src = cfg.data, cfg.source
    rows = _merged_rows if src.type == "shards" else _source_rows
    # Merged labels are boundaries already; decode_rows ignores thickness for them.
    thickness = 1 if src.type == "shards" else d.thickness
    decode = {
        "fn_kwargs": {"resolution": d.resolution, "thickness": thickness},
        "batch_size": d.decode_batch_size,
        "num_cpus": d.decode_cpus,
    }
    train = rows(cfg, "train", src.num_samples).map_batches(training_rows, **decode)
    val = None
    # Only sources that split by sorted id have a held-out part of their own input.
    if cfg.validation.every_steps > 0 and src.type in ("sa1b", "shards"):
        val = rows(cfg, "val", cfg.validation.num_images).map_batches(training_rows, **decode)
    if d.preserve_order:
        # Train local mode iterates these datasets as they are; a worker group gets the same
        # option through the trainer's DataConfig (trainer.py).
        for ds in (train, val):
            if ds is not None:
                ds.context.execution_options.preserve_order = True
    return train, val


def count_train_images(cfg: TrainConfig) -> int:
    """Number of training images listed (before rows that fail to decode are dropped)."""
    src = cfg.source
    if src.type == "shards":
        from directsam.data.sources.shards.counts import merged_label_counts, shard_val_keys

        checkpoint = cfg.data.labels_checkpoint
        good = merged_label_counts(src.input, checkpoint)["num_good"]
        n = good - len(shard_val_keys(src.input, checkpoint, good_only=True))
        return max(0, min(n, src.num_samples or n))
    from directsam.data.sources import TarPlan, plan_source
    from directsam.data.sources.plan import count_images

    plan = plan_source(replace(src, split="train"))
    if isinstance(plan, TarPlan):
        # Tars are never listed image by image: count from the first 64 MiB (exact on small
        # inputs), which only sets the epoch length of an epochs-based schedule.
        n, exact = count_images(plan)
        if not exact:
            logger.info("training: ~%d images estimated from %d tars", n, len(plan.tars))
        return n
    return plan.items.num_rows


def to_model_input(
    images: torch.Tensor,
    generator: torch.Generator | None = None,
    augment_p: float = 0.0,
    channels_last: bool = False,
) -> torch.Tensor:
    """uint8 ``(B, R, R, 3)`` (any device) -> normalised float32 ``(B, 3, R, R)`` on that device.

    ``x / 255``, then (training) the seed's photometric augmentation with probability
    ``augment_p`` per image, then ImageNet mean/std: the same values as
    ``directsam.inference.preprocess_images`` on an image already at ``R x R``.

    Args:
        images: uint8 RGB batch, channels last.
        generator: CPU generator for the augmentation (required when ``augment_p > 0``).
        augment_p: probability of augmenting each image (0 = none).
        channels_last: return a channels_last-strided tensor (faster convolutions on CUDA).
    """
    import torch

    from directsam.inference.preprocess import IMAGENET_MEAN, IMAGENET_STD

    x = images.permute(0, 3, 1, 2).float().div_(255.0)
    if augment_p > 0:
        from directsam.data.augment import photometric_augment

        if generator is None:
            raise ValueError("augment_p > 0 needs a generator")
        x = photometric_augment(x, generator, p=augment_p)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    x = (x - mean) / std
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return x.contiguous(memory_format=fmt)
