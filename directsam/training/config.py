"""Typed configuration of the training jobs (stage 1 ``pretrain``, stage 3 ``self-train``).

One dataclass tree per job; the two stages differ only in their defaults (the seed's settings),
so ``PretrainConfig`` and ``SelfTrainConfig`` subclass :class:`TrainConfig` and replace the
section defaults. YAML presets in ``configs/`` mirror these defaults with comments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from directsam.config import config_hash
from directsam.data.sources.spec import SourceSpec

Stage = Literal["pretrain", "self_train"]

# Source keys as they were before the one `source` section (issue 17): an old key is refused
# naming its new one (directsam.config), and the run-name hash keeps the old names.
RENAMED_KEYS: dict[str, str] = {
    "data.source": "source.type",
    "data.input": "source.input",
    "data.dataset": "source.dataset",
    "data.registry": "source.registry",
    "data.mode": "source.mode",
    "data.annotations": "source.annotations",
    "data.labels": "source.labels",
    "data.num_samples": "source.num_samples",
    "data.seed": "source.seed",
}

# Settings that define what a run trains (DESIGN.md "Runs and resume"): two configs that agree
# on these resume each other; length settings (max_steps, epochs), logging cadence and cluster
# shape do not change the run's identity.
SHAPE_KEYS: tuple[str, ...] = (
    "stage",
    "init",
    "source.type",
    "source.input",
    "source.dataset",
    "source.mode",
    "source.annotations",
    "source.labels",
    "data.labels_checkpoint",
    "source.num_samples",
    "source.seed",
    "data.resolution",
    "data.thickness",
    "optim.lr",
    "optim.weight_decay",
    "optim.betas",
    "optim.schedule",
    "optim.warmup_steps",
    "optim.min_lr_ratio",
    "optim.grad_clip",
    "optim.batch_size",
    "optim.grad_accum",
    "optim.precision",
    "optim.augment_p",
    "optim.seed",
)

EXPERIMENTS: dict[str, str] = {
    "pretrain": "directsam-pretrain",
    "self_train": "directsam-self-train",
}


@dataclass
class TrainDataConfig:
    """How training images and boundary targets are made from the source rows."""

    labels_checkpoint: str | None = None
    """``shards``: the pseudo-label generation (checkpoint spec); default the newest."""
    resolution: int = 1800
    """Square input and target side in pixels."""
    thickness: int = 3
    """Boundary band width of targets built from annotations (not used for merged labels)."""
    shuffle_buffer: int = 64
    """Rows in each worker's local shuffle buffer (0 = stream order)."""
    prefetch_batches: int = 2
    """Batches each worker prefetches ahead of the GPU."""
    preserve_order: bool = False
    """Deliver rows in the source's (seeded) order, so a run repeats exactly: Ray Data otherwise
    hands on whichever read/decode task finishes first. Costs some overlap between tasks; the
    smoke presets and the demo turn it on, large runs need not."""
    decode_batch_size: int = 8
    """Rows per Ray Data decode task (one task builds this many targets)."""
    decode_cpus: float = 1.0
    """CPUs reserved per decode task."""

    def validate(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        # SegFormer takes any side (logits at ceil(R/4)); a multiple of 4 keeps them at R/4.
        # 32 would refuse the seed's 1800 px.
        if self.resolution < 32 or self.resolution % 4:
            out.append(("resolution", f"must be a multiple of 4 and >= 32, got {self.resolution}"))
        if self.thickness < 1:
            out.append(("thickness", f"must be >= 1, got {self.thickness}"))
        if self.shuffle_buffer < 0:
            out.append(("shuffle_buffer", f"must be >= 0, got {self.shuffle_buffer}"))
        if self.prefetch_batches < 0:
            out.append(("prefetch_batches", f"must be >= 0, got {self.prefetch_batches}"))
        if self.decode_batch_size < 1:
            out.append(("decode_batch_size", f"must be >= 1, got {self.decode_batch_size}"))
        if self.decode_cpus <= 0:
            out.append(("decode_cpus", f"must be > 0, got {self.decode_cpus}"))
        return out


@dataclass
class OptimConfig:
    """Optimizer, schedule, batch and precision (the seed's HF ``Trainer`` settings)."""

    lr: float = 1e-4
    """Peak learning rate of AdamW."""
    weight_decay: float = 0.0
    """AdamW weight decay (HF Trainer default 0)."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    """AdamW betas."""
    eps: float = 1e-8
    """AdamW epsilon."""
    schedule: Literal["constant", "cosine"] = "constant"
    """After warmup: ``constant`` (the seed) or ``cosine`` decay to ``min_lr_ratio * lr``."""
    warmup_steps: int = 5000
    """Linear warmup from 0 over this many optimizer steps."""
    min_lr_ratio: float = 0.0
    """Cosine floor as a fraction of ``lr``."""
    grad_clip: float = 0.04
    """Max global gradient norm (0 disables clipping)."""
    batch_size: int = 4
    """Images per worker per micro-batch."""
    grad_accum: int = 1
    """Micro-batches per optimizer step."""
    epochs: int = 100
    """Passes over the training split (the run stops at ``max_steps`` if that comes first)."""
    max_steps: int | None = None
    """Stop after this many optimizer steps (``--max-steps``)."""
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    """Autocast dtype: ``auto`` = bf16 on CUDA, fp32 on CPU."""
    augment_p: float = 0.25
    """Probability of each photometric augmentation (blur, colour jitter, grayscale)."""
    channels_last: bool = True
    """Use channels_last memory format on CUDA (faster convolutions)."""
    seed: int = 0
    """Seed of augmentation and dropout RNGs (rank r uses seed + r)."""

    def validate(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if self.lr <= 0:
            out.append(("lr", f"must be > 0, got {self.lr}"))
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            out.append(("betas", f"expected two numbers in [0, 1), got {self.betas}"))
        if self.warmup_steps < 0:
            out.append(("warmup_steps", f"must be >= 0, got {self.warmup_steps}"))
        if not 0 <= self.min_lr_ratio <= 1:
            out.append(("min_lr_ratio", f"must be in [0, 1], got {self.min_lr_ratio}"))
        if self.grad_clip < 0:
            out.append(("grad_clip", f"must be >= 0, got {self.grad_clip}"))
        if self.batch_size < 1:
            out.append(("batch_size", f"must be >= 1, got {self.batch_size}"))
        if self.grad_accum < 1:
            out.append(("grad_accum", f"must be >= 1, got {self.grad_accum}"))
        if self.epochs < 1:
            out.append(("epochs", f"must be >= 1, got {self.epochs}"))
        if self.max_steps is not None and self.max_steps < 1:
            out.append(("max_steps", f"must be >= 1, got {self.max_steps}"))
        if not 0 <= self.augment_p <= 1:
            out.append(("augment_p", f"must be in [0, 1], got {self.augment_p}"))
        return out


@dataclass
class CheckpointingConfig:
    """When rank 0 writes checkpoints and how many are kept."""

    every_steps: int = 1000
    """Checkpoint every N optimizer steps (the final step is always saved)."""
    num_to_keep: int | None = 3
    """Newest checkpoints kept in storage (None keeps all)."""

    def validate(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if self.every_steps < 1:
            out.append(("every_steps", f"must be >= 1, got {self.every_steps}"))
        if self.num_to_keep is not None and self.num_to_keep < 1:
            out.append(("num_to_keep", f"must be >= 1 or null, got {self.num_to_keep}"))
        return out


@dataclass
class ValidationConfig:
    """Held-out validation: effective contour recall and token count at a fixed threshold."""

    every_steps: int = 1000
    """Validate every N optimizer steps and at the end (0 disables)."""
    num_images: int = 64
    """Validation images (first N of the held-out split in sorted-id order)."""
    threshold: float = 0.5
    """Boundary probability threshold."""
    tolerance: int = 5
    """Effective contour recall tolerance in pixels."""
    batch_size: int = 4
    """Images per validation forward pass."""

    def validate(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if self.every_steps < 0:
            out.append(("every_steps", f"must be >= 0, got {self.every_steps}"))
        if self.num_images < 1:
            out.append(("num_images", f"must be >= 1, got {self.num_images}"))
        if not 0 < self.threshold < 1:
            out.append(("threshold", f"must be in (0, 1), got {self.threshold}"))
        if self.tolerance < 1:
            out.append(("tolerance", f"must be >= 1, got {self.tolerance}"))
        if self.batch_size < 1:
            out.append(("batch_size", f"must be >= 1, got {self.batch_size}"))
        return out


@dataclass
class RunSettings:
    """Identity, storage and cluster shape of a run."""

    run_name: str | None = None
    """Run name (``--run-name``); default ``<experiment>-<hash of shape-defining config>``."""
    storage_path: str = "runs"
    """Checkpoint storage: a local/NFS directory or ``s3://...`` (``--storage-path``)."""
    shared_storage: bool = False
    """Declare a local ``storage_path`` shared by every node (NFS) on a multi-node cluster."""
    num_workers: int = 1
    """Training workers (one per GPU); 0 = Ray Train local mode in the driver process."""
    use_gpu: bool = False
    """One GPU per worker (``--use-gpu``)."""
    cpus_per_worker: float = 1.0
    """CPUs reserved per training worker (the rest decode data)."""
    max_failures: int = 3
    """Worker-group restarts from the latest checkpoint before the run fails."""

    def validate(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if self.run_name is not None and not _safe_name(self.run_name):
            out.append(
                ("run_name", f"use letters, digits, '.', '_' and '-' only: {self.run_name!r}")
            )
        if not self.storage_path:
            out.append(("storage_path", "must not be empty"))
        if self.num_workers < 0:
            out.append(("num_workers", f"must be >= 0, got {self.num_workers}"))
        if self.cpus_per_worker <= 0:
            out.append(("cpus_per_worker", f"must be > 0, got {self.cpus_per_worker}"))
        if self.max_failures < -1:
            out.append(("max_failures", f"must be >= -1 (-1 = unlimited), got {self.max_failures}"))
        return out


@dataclass
class TrackingSettings:
    """MLflow tracking (rank 0 and the driver only)."""

    enabled: bool = True
    """Log to MLflow."""
    uri: str | None = None
    """Tracking URI (``--tracking-uri``); default ``MLFLOW_TRACKING_URI`` or ./mlflow.db."""
    experiment: str | None = None
    """Experiment (``--experiment``); default ``directsam-pretrain`` / ``directsam-self-train``."""
    log_every_steps: int = 10
    """Log loss / lr / images_per_s every N optimizer steps."""
    log_checkpoint_artifact: bool = True
    """Copy the final checkpoint's model files into the MLflow run's artifacts (``checkpoint/``)."""
    log_model: bool = False
    """Also log the final checkpoint as an MLflow pyfunc model (``directsam.delivery``), so
    ``models:/...`` specs and ``mlflow.pyfunc.load_model`` can use it."""
    registered_model_name: str | None = None
    """Register the logged model under this name (``--register-model``; implies ``log_model``)."""

    def validate(self) -> list[tuple[str, str]]:
        if self.log_every_steps < 1:
            return [("log_every_steps", f"must be >= 1, got {self.log_every_steps}")]
        return []


def _pretrain_source() -> SourceSpec:
    return SourceSpec(type="sa1b")


def _self_train_source() -> SourceSpec:
    return SourceSpec(type="shards")


@dataclass
class TrainConfig:
    """Everything a training job needs; ``init`` is the starting checkpoint spec."""

    RENAMED_KEYS: ClassVar[dict[str, str]] = RENAMED_KEYS

    stage: Stage = "pretrain"
    """``pretrain`` (stage 1, SA-1B) or ``self_train`` (stage 3, merged labels)."""
    init: str = "nvidia/segformer-b0-finetuned-cityscapes-1024-1024"
    """Initial weights: hub id, local checkpoint directory or ``scratch:b0``..``b5`` (``--init``)."""
    allow_pickle: bool = False
    """Allow ``pytorch_model.bin`` weights for ``init``."""
    source: SourceSpec = field(default_factory=_pretrain_source)
    """Training data (as for ``directsam label``; ``shards`` reads merged labels). ``split``:
    training always trains on the train split and validates on the held-out val split, so
    ``all`` and ``train`` mean the same and ``val`` is refused. ``num_samples``: of the
    training images."""
    data: TrainDataConfig = field(default_factory=TrainDataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    checkpoint: CheckpointingConfig = field(default_factory=CheckpointingConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    run: RunSettings = field(default_factory=RunSettings)
    tracking: TrackingSettings = field(default_factory=TrackingSettings)

    def validate(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if not self.init:
            out.append(("init", "no initial checkpoint: pass --init SPEC (or scratch:b0)"))
        if self.source.split == "val":
            out.append(
                (
                    "source.split",
                    "training trains on the train split and validates on the held-out val "
                    "split; use all or train (a registry entry of --dataset may have set val)",
                )
            )
        return out

    def experiment(self) -> str:
        """The MLflow experiment (and run-name prefix) of this job."""
        return self.tracking.experiment or EXPERIMENTS[self.stage]

    def shape_hash(self) -> str:
        """Hash of the shape-defining settings (:data:`SHAPE_KEYS`), the source keys under
        their names before issue 17, so that runs started then resume under the same name."""
        legacy = {new: old for old, new in RENAMED_KEYS.items()}
        return config_hash(self, SHAPE_KEYS, names=legacy)

    def run_name(self) -> str:
        """``run.run_name``, else ``<experiment>-<shape hash>`` (same name = resume)."""
        return self.run.run_name or f"{self.experiment()}-{self.shape_hash()}"

    def autocast_dtype(self, device_type: str) -> Any:
        """The ``torch.autocast`` dtype for ``device_type``, or None for plain fp32."""
        import torch

        precision = self.optim.precision
        if precision == "auto":
            precision = "bf16" if device_type == "cuda" else "fp32"
        return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[precision]


def _pretrain_data() -> TrainDataConfig:
    return TrainDataConfig(resolution=1800, thickness=3)


def _self_train_data() -> TrainDataConfig:
    return TrainDataConfig(resolution=1024, thickness=3)


def _self_train_optim() -> OptimConfig:
    # The seed runs the same train.py for both stages, so warmup (5000) and clipping carry over.
    return OptimConfig(lr=5e-5, batch_size=4, grad_accum=8, epochs=5)


@dataclass
class PretrainConfig(TrainConfig):
    """Stage 1 defaults: SA-1B at 1800 px, thickness 3, lr 1e-4, batch 4, warmup 5000."""

    stage: Stage = "pretrain"
    source: SourceSpec = field(default_factory=_pretrain_source)
    data: TrainDataConfig = field(default_factory=_pretrain_data)


@dataclass
class SelfTrainConfig(TrainConfig):
    """Stage 3 defaults: merged labels at 1024 px, lr 5e-5, batch 4 x 8 accumulation, 5 epochs."""

    stage: Stage = "self_train"
    init: str = "chendelong/DirectSAM-1800px-0424"
    source: SourceSpec = field(default_factory=_self_train_source)
    data: TrainDataConfig = field(default_factory=_self_train_data)
    optim: OptimConfig = field(default_factory=_self_train_optim)


def config_class(stage: str) -> type[TrainConfig]:
    """The config class of a stage (``pretrain`` / ``self_train``)."""
    return {"pretrain": PretrainConfig, "self_train": SelfTrainConfig}[stage]


def _safe_name(name: str) -> bool:
    return bool(name) and all(c.isalnum() or c in "._-" for c in name)
