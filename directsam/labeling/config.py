"""``LabelConfig``: the typed configuration of a pseudo-labeling job (stage 2).

Defaults are the seed's (1800 px, threshold 0.5, human boundary thickness 9). YAML presets
live in ``configs/pseudo_label.yaml``; flags of ``directsam label`` are shorthands for keys
here (``directsam.cli.label.SHORTHANDS``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from directsam.data.sources.spec import SourceSpec
from directsam.data.sources.store import StoreOptions

DTYPES = ("auto", "fp32", "fp16", "bf16")
DEVICES = ("auto", "cuda", "cpu")
IMAGE_DECODE_CHOICES = ("auto", "cpu", "gpu")  # as directsam.inference.gpu_decode


@dataclass
class ObjectStoreConfig:
    endpoint: str | None = None
    """S3-protocol endpoint URL for s3:// URIs (MinIO: http://HOST:9000); default
    AWS_ENDPOINT_URL, else AWS. Reaches every Ray worker of the job."""
    region: str | None = None
    """Region of the S3-protocol store (default AWS_REGION / AWS_DEFAULT_REGION)."""
    tries: int = 5
    """Attempts per streamed tar read (dropped connection, timeout, 5xx) before the unread
    images of that tar become a failed row that a re-run retries."""
    backoff_s: float = 0.5
    """First delay between attempts; doubles per failed attempt (capped at 30 s)."""
    timeout_s: float = 60.0
    """Connect / read timeout of one request, in seconds."""

    def options(self) -> StoreOptions:
        return StoreOptions(
            endpoint=self.endpoint or None,
            region=self.region or None,
            tries=self.tries,
            backoff_s=self.backoff_s,
            timeout_s=self.timeout_s,
        )

    def validate(self) -> list[tuple[str, str]]:
        out = []
        if self.tries < 1:
            out.append(("tries", f"must be >= 1, got {self.tries}"))
        if self.backoff_s < 0:
            out.append(("backoff_s", f"must be >= 0, got {self.backoff_s}"))
        if self.timeout_s <= 0:
            out.append(("timeout_s", f"must be > 0, got {self.timeout_s}"))
        return out


@dataclass
class ModelConfig:
    checkpoint: str = ""
    """Checkpoint spec: hub id, local directory, or scratch:b0..b5 (benchmarks/smoke only)."""
    resolution: int = 1800
    """Model input side R; pseudo and human boundaries are stored at R x R."""
    threshold: float = 0.5
    """Boundary pixels are probability >= threshold."""
    dtype: str = "auto"
    """auto (bf16 on CUDA, fp32 on CPU) | fp32 | fp16 | bf16."""
    device: str = "auto"
    """auto (cuda when the cluster has GPUs) | cuda | cpu."""
    compile: bool = False
    """torch.compile the model in each actor (first batch compiles)."""
    channels_last: bool = True
    """NHWC convolutions (faster on tensor cores)."""
    allow_pickle: bool = False
    """Allow pytorch_model.bin (pickle) weights."""

    def validate(self) -> list[tuple[str, str]]:
        out = []
        if self.resolution < 32:
            out.append(("resolution", f"must be >= 32, got {self.resolution}"))
        if not 0.0 < self.threshold < 1.0:
            out.append(("threshold", f"must be in (0, 1), got {self.threshold}"))
        if self.dtype not in DTYPES:
            out.append(("dtype", f"must be one of {', '.join(DTYPES)}, got {self.dtype!r}"))
        if self.device not in DEVICES:
            out.append(("device", f"must be one of {', '.join(DEVICES)}, got {self.device!r}"))
        return out


@dataclass
class ComputeConfig:
    batch_size: int = 8
    """Images per GPU forward (B5 @ 1800 px: 8; larger batches are split by the predictor)."""
    gpu_actors: int = 1
    """Fixed size of the model actor pool (one per GPU of the cluster)."""
    gpus_per_actor: float = 1.0
    """GPUs per actor (0.5 packs two actors on one GPU); ignored on CPU."""
    cpus_per_actor: float = 1.0
    """CPUs reserved per model actor (keep below the cluster's CPUs: decode needs some)."""
    decode_batch_size: int = 8
    """Rows per CPU decode task batch."""
    decode_tasks: int | None = None
    """Most concurrent decode tasks (default: the cluster's CPUs)."""
    image_decode: str = "auto"
    """Where JPEGs are decoded: cpu (CPU tasks) | gpu (the CUDA model actors, nvJPEG; needs
    nvidia-nvimgcodec-cu12 or torchvision) | auto (gpu when the actors run on CUDA and such a
    package is installed, else cpu). See docs/SIZING.md."""
    rows_per_shard: int = 1000
    """Images per shard: block k of a sorted listing -> part-{k:06d}.parquet; tar sources:
    chunk c of tar T -> part-T-{c:05d}.parquet."""
    max_blocks: int | None = None
    """Stop after writing this many blocks (testing, fault injection, partial runs)."""
    progress_interval_s: float = 30.0
    """Seconds between "N/M images, img/s" log lines."""
    lease_ttl_s: float = 120.0
    """A run's lease on its output generation expires this long after its last heartbeat
    (another run on the same output refuses to start while it is fresh)."""

    def validate(self) -> list[tuple[str, str]]:
        out = []
        if self.lease_ttl_s <= 0:
            out.append(("lease_ttl_s", f"must be > 0, got {self.lease_ttl_s}"))
        for name in ("batch_size", "gpu_actors", "decode_batch_size", "rows_per_shard"):
            if getattr(self, name) < 1:
                out.append((name, f"must be >= 1, got {getattr(self, name)}"))
        if self.gpus_per_actor <= 0:
            out.append(("gpus_per_actor", f"must be > 0, got {self.gpus_per_actor}"))
        if self.cpus_per_actor < 0:
            out.append(("cpus_per_actor", f"must be >= 0, got {self.cpus_per_actor}"))
        if self.max_blocks is not None and self.max_blocks < 0:
            out.append(("max_blocks", f"must be >= 0, got {self.max_blocks}"))
        if self.image_decode not in IMAGE_DECODE_CHOICES:
            out.append(
                (
                    "image_decode",
                    f"must be one of {', '.join(IMAGE_DECODE_CHOICES)}, got {self.image_decode!r}",
                )
            )
        return out


@dataclass
class TrackingConfig:
    enabled: bool = True
    """Log an MLflow run (config, counts, throughput)."""
    uri: str | None = None
    """MLflow tracking URI (default MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)."""
    experiment: str = "directsam-label"
    """MLflow experiment."""


@dataclass
class LabelConfig:
    """Everything a pseudo-labeling job (stage 2) needs: source, model, compute, outputs."""

    output: str = ""
    """Output root: shards go to OUTPUT/<dataset>/gen-<checkpoint sha>/part-*.parquet."""
    thickness: int = 9
    """Human boundary band thickness at the model resolution (seed: 9)."""
    address: str | None = None
    """Ray address (default RAY_ADDRESS, else a local cluster)."""
    source: SourceSpec = field(default_factory=SourceSpec)
    """What to label (``type``/``input`` may come from the registry entry named by
    ``source.dataset``)."""
    object_store: ObjectStoreConfig = field(default_factory=ObjectStoreConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    compute: ComputeConfig = field(default_factory=ComputeConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def validate(self) -> list[tuple[str, str]]:
        out = []
        if self.thickness < 1:
            out.append(("thickness", f"must be >= 1, got {self.thickness}"))
        return out

    def check_ready(self) -> list[tuple[str, str]]:
        """Problems that only matter when running (required paths), after registry filling."""
        out = []
        for key, value in (
            ("output", self.output),
            ("model.checkpoint", self.model.checkpoint),
            ("source.type", self.source.type),
            ("source.input", self.source.input),
        ):
            if not value:
                out.append((key, "is required"))
        return out
