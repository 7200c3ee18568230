"""What a job reads: :data:`SourceType` (the one spelling of the source types) and
:class:`SourceSpec` (type, where, which part).

Every job that reads a source (``label``, ``pretrain``, ``self-train``, ``evaluate``, ``sweep``,
``segment``) holds one ``SourceSpec``: its config's ``source`` section, the same keys for every
job (``source.type``, ``source.input``, ...). ``plan_source``, ``read_source`` and
``list_source`` take it whole. Everything else that names the types (argparse ``choices``, the
registry check, messages) derives from :data:`SourceType` through :data:`SOURCE_TYPES`.

Importing this module is cheap (dataclasses and typing only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from directsam.data.decode import LABEL_MAP_MODES, LabelMapMode

SourceType = Literal["sa1b", "coco", "labelmap", "images", "shards"]
"""SA-1B (tar shards or extracted folders), COCO-style instance JSON, label-map folder pairs,
plain image folders, our own labeled shards (layouts in docs/LABELING.md)."""
SOURCE_TYPES: tuple[SourceType, ...] = get_args(SourceType)

Split = Literal["all", "train", "val"]
SPLITS: tuple[Split, ...] = get_args(Split)

# SourceSpec field -> the flag a user changes (the source flags of every job; a job whose flag
# differs, e.g. training's --data for input, passes its own names to the config loader).
FLAGS: dict[str, str] = {
    "type": "--source",
    "input": "--input",
    "dataset": "--dataset",
    "annotations": "--annotations",
    "labels": "--labels",
    "mode": "--mode",
    "split": "--split",
    "num_samples": "--num-samples",
    "seed": "--seed",
    "registry": "--registry",
}


def _choices(values: tuple[str, ...]) -> str:
    return ", ".join(values)


@dataclass
class SourceSpec:
    """One source: its type, where it is, and which images of it (split, subset).

    The config section ``source`` of every job. Paths may be local or ``s3://`` URIs
    (``?endpoint_override=host:port&scheme=http`` sets the endpoint for the job).
    """

    type: SourceType | None = None
    """Source type (null: from the registry entry named by ``dataset``)."""
    input: str = ""
    """Input path or URI (sa1b: a tar, a folder of tars, an extracted folder or a root of
    them; layouts in docs/LABELING.md)."""
    dataset: str | None = None
    """Dataset name: output folder, MLflow tag and cache key (default: the input's base name;
    shards keep theirs). A name in ``registry`` fills the source keys that were not given."""
    annotations: str | None = None
    """COCO JSON file (default: the one *.json in ``input``)."""
    labels: str | None = None
    """Label-map folder (default: INPUT/labels beside INPUT/images)."""
    mode: LabelMapMode = "single_channel"
    """Label-map decoding mode (``labelmap`` sources)."""
    split: Split = "all"
    """Which part: ``val`` is the official split where a dataset has one (the input itself for
    coco/labelmap/images) and the last 1% of sorted ids for sa1b/shards (tars: the last 1% of
    the tars); ``train`` the rest."""
    num_samples: int | None = None
    """First N images in sorted-id order (with ``seed``: a seeded random subset); null = all."""
    seed: int | None = None
    """Seed of the ``num_samples`` subset; null = the first N."""
    registry: str = "configs/datasets.yaml"
    """Dataset registry consulted when ``dataset`` names one of its entries."""

    def validate(self) -> list[tuple[str, str]]:
        """``(field, problem)`` pairs; :func:`directsam.config.load_config` names each flag."""
        out: list[tuple[str, str]] = []
        if self.type is not None and self.type not in SOURCE_TYPES:
            out.append(("type", f"must be one of {_choices(SOURCE_TYPES)}, got {self.type!r}"))
        if self.mode not in LABEL_MAP_MODES:
            out.append(("mode", f"must be one of {_choices(LABEL_MAP_MODES)}, got {self.mode!r}"))
        if self.split not in SPLITS:
            out.append(("split", f"must be one of {_choices(SPLITS)}, got {self.split!r}"))
        if self.num_samples is not None and self.num_samples < 1:
            out.append(("num_samples", f"must be >= 1 (or null for all), got {self.num_samples}"))
        return out

    def check(self) -> SourceSpec:
        """This spec when it can be listed, else ``ValueError`` naming the flags.

        Raises:
            ValueError: no type or input, or a value :meth:`validate` refuses.
        """
        problems = []
        if self.type is None:
            problems.append(("type", f"is required ({_choices(SOURCE_TYPES)})"))
        if not self.input:
            problems.append(("input", "is required (a path or URI)"))
        problems += self.validate()
        if problems:
            raise ValueError("; ".join(f"{FLAGS[name]} {message}" for name, message in problems))
        return self
