"""Evaluation and sweep settings: ``EvalConfig`` (one checkpoint on one validation split) and
``SweepConfig`` (the same plus Ray Tune grid settings).

Defaults are the seed's evaluation: 1024 px, GT boundary thickness 2, tolerance 5, the first 100
validation images, thresholds 0.1..0.5. Both classes load through :mod:`directsam.config`
(YAML preset + named flags + ``--set``) and report every problem at once, naming the flag.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar, Literal

from directsam.data.sources.spec import SourceSpec

DEFAULT_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5)
DEFAULT_EXPERIMENT = "directsam-eval"
REGISTRY = "configs/eval_datasets.yaml"

# Source keys as they were before the one `source` section (issue 17); an old key is refused
# naming its new one (directsam.config).
_MOVED = ("input", "dataset", "split", "mode", "annotations", "labels", "num_samples", "seed")
RENAMED_KEYS: dict[str, str] = {"source": "source.type", **{k: f"source.{k}" for k in _MOVED}}


def _eval_source() -> SourceSpec:
    # The seed scored the first 100 images of each validation split.
    return SourceSpec(type="sa1b", split="val", num_samples=100, registry=REGISTRY)


@dataclass
class EvalConfig:
    """One checkpoint evaluated on one dataset's validation split."""

    RENAMED_KEYS: ClassVar[dict[str, str]] = RENAMED_KEYS

    checkpoint: str = ""
    """Checkpoint spec: hub id, local directory, or ``scratch:b0``..``scratch:b5``/``scratch:tiny``."""
    source: SourceSpec = field(default_factory=_eval_source)
    """The split to score (``images`` has no annotations and cannot be evaluated); its dataset
    name is the MLflow tag and part of the cache key."""
    resolution: int = 1024
    """Square evaluation side R: model input, probabilities and GT boundary are R x R."""
    thickness: int = 2
    """GT boundary thickness in pixels at the evaluation resolution (the seed's 2)."""
    tolerance: int = 5
    """Matching tolerance and border band width of effective contour recall (pixels)."""
    thresholds: list[float] = field(default_factory=lambda: list(DEFAULT_THRESHOLDS))
    """Probability thresholds; the prediction is ``dequantised probs >= threshold``."""
    batch_size: int = 4
    """Images per model call in the predictor actors (must be explicit for GPU actors)."""
    num_actors: int | None = None
    """Predictor actors; default: one per GPU in the cluster, else 1."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """``auto`` = a GPU per actor when the cluster has GPUs, else CPU actors."""
    dtype: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    """Model dtype (``auto``: bf16/fp16 on GPU, fp32 on CPU); part of the cache key."""
    cache_dir: str = "outputs/eval_cache"
    """Root of the probability cache (local path or ``s3://``; shared storage on clusters)."""
    output: str = "outputs/eval"
    """Local folder for results.csv, the plot and panels (also uploaded to MLflow)."""
    tracking: bool = True
    """Log runs to MLflow (one per threshold + a summary run)."""
    tracking_uri: str | None = None
    """MLflow URI; default ``MLFLOW_TRACKING_URI`` or ``sqlite:///<cwd>/mlflow.db``."""
    experiment: str = DEFAULT_EXPERIMENT
    """MLflow experiment name."""
    num_panels: int = 4
    """Visual panels for the first N images (sorted ids); 0 = none."""
    panel_threshold: float | None = None
    """Threshold the panels are drawn at; default: the middle of ``thresholds``."""

    def dataset_name(self) -> str:
        """``source.dataset``, else the input's last path component (``"sample"`` for
        ``/x/sample/``)."""
        if self.source.dataset:
            return self.source.dataset
        name = Path(self.source.input.rstrip("/").split("::")[0]).stem
        return name or "dataset"

    def panel_at(self) -> float:
        """The threshold panels are drawn at."""
        if self.panel_threshold is not None:
            return self.panel_threshold
        grid = sorted(self.thresholds)
        return grid[(len(grid) - 1) // 2]

    def validate(self) -> list[tuple[str, str]]:
        """``(field, problem)`` pairs; :func:`directsam.config.load_config` names the flag."""
        problems: list[tuple[str, str]] = []
        if not self.checkpoint:
            problems.append(("checkpoint", "required (hub id, directory or scratch:b0..b5)"))
        if not self.source.input:
            problems.append(("source.input", "required (dataset root, file or URI)"))
        if self.source.type == "images":
            problems.append(("source.type", "'images' has no annotations to evaluate against"))
        if self.resolution < 32:
            problems.append(("resolution", f"must be >= 32, got {self.resolution}"))
        if self.thickness < 1:
            problems.append(("thickness", f"must be >= 1, got {self.thickness}"))
        if self.tolerance < 1:
            problems.append(("tolerance", f"must be >= 1, got {self.tolerance}"))
        if self.tolerance * 2 >= self.resolution:
            problems.append(
                ("tolerance", f"{self.tolerance} leaves nothing of a {self.resolution} px image")
            )
        problems.extend(_check_thresholds("thresholds", self.thresholds))
        if self.panel_threshold is not None and not 0.0 < self.panel_threshold <= 1.0:
            problems.append(("panel_threshold", f"must be in (0, 1], got {self.panel_threshold}"))
        if self.batch_size < 1:
            problems.append(("batch_size", f"must be >= 1, got {self.batch_size}"))
        if self.num_actors is not None and self.num_actors < 1:
            problems.append(("num_actors", f"must be >= 1, got {self.num_actors}"))
        if self.num_panels < 0:
            problems.append(("num_panels", f"must be >= 0, got {self.num_panels}"))
        if not self.experiment:
            problems.append(("experiment", "must not be empty"))
        return problems


@dataclass
class SweepConfig(EvalConfig):
    """An evaluation whose thresholds (and optionally tolerances / resolutions) run as Tune trials.

    Each trial is a 1-CPU job over the cached probabilities; a grid over ``resolutions`` builds
    one cache per resolution first (one model pass each).
    """

    tolerances: list[int] | None = None
    """Tolerances to sweep; null = just ``tolerance``."""
    resolutions: list[int] | None = None
    """Resolutions to sweep (one model pass each); null = just ``resolution``."""
    max_concurrent_trials: int | None = None
    """Trials running at once; default: the cluster's CPU count."""
    cpus_per_trial: float = 1.0
    """CPUs reserved per Tune trial."""
    storage_path: str | None = None
    """Ray Tune storage (trial results); default ``<output>/ray_results``."""

    def tolerance_grid(self) -> list[int]:
        """Tolerances the sweep covers (sorted, unique)."""
        return sorted(set(self.tolerances or [self.tolerance]))

    def resolution_grid(self) -> list[int]:
        """Resolutions the sweep covers (sorted, unique)."""
        return sorted(set(self.resolutions or [self.resolution]))

    def at_resolution(self, resolution: int) -> EvalConfig:
        """The plain :class:`EvalConfig` of one grid resolution (cache building, panels)."""
        names = [f.name for f in dataclasses.fields(EvalConfig)]
        values = {name: getattr(self, name) for name in names}
        values["source"] = replace(self.source)
        values["resolution"] = resolution
        return EvalConfig(**values)

    def validate(self) -> list[tuple[str, str]]:
        problems = super().validate()
        for res in self.resolutions or []:
            if res < 32:
                problems.append(("resolutions", f"every resolution must be >= 32, got {res}"))
        for tol in self.tolerances or []:
            if tol < 1:
                problems.append(("tolerances", f"every tolerance must be >= 1, got {tol}"))
        if self.max_concurrent_trials is not None and self.max_concurrent_trials < 1:
            problems.append(
                ("max_concurrent_trials", f"must be >= 1, got {self.max_concurrent_trials}")
            )
        if self.cpus_per_trial <= 0:
            problems.append(("cpus_per_trial", f"must be > 0, got {self.cpus_per_trial}"))
        return problems


def _check_thresholds(name: str, thresholds: list[float]) -> list[tuple[str, str]]:
    if not thresholds:
        return [(name, "give at least one threshold, e.g. 0.1,0.2,0.3,0.4,0.5")]
    bad = [t for t in thresholds if not 0.0 < t <= 1.0]
    if bad:
        return [(name, f"thresholds must be in (0, 1], got {bad}")]
    if len(set(thresholds)) != len(thresholds):
        return [(name, f"duplicate thresholds in {thresholds}")]
    return []
