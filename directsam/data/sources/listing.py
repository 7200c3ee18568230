"""Listing tables: the Arrow table of listed items every lister builds, and its selection.

Folders (SA-1B extracted, label maps, plain images) and COCO-style JSON are listed in O(files)
requests (one LIST per prefix page, plus the one annotation JSON for COCO) and held as one
Arrow table (:func:`item_schema`), not as a Python object per image. The listers themselves
live in one module per source type (``directsam.data.sources.listers.LISTERS``); SA-1B *tars*
are not listed: their plan is the tar objects themselves (``directsam.data.sources.plan``).
Every image found becomes exactly one row; problems known at listing time (an SA-1B image
without its JSON, a label-map image without its label) become rows with ``error`` set.

:class:`SourceItem` is a convenience view of one row for small inputs and tests.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from directsam.data.sources import fs

if TYPE_CHECKING:
    import pyarrow as pa

    from directsam.data.sources.spec import SourceSpec

VAL_FRACTION = 0.01


@dataclass
class SourceItem:
    """One input image as listed on the driver (small: names and offsets, inline JSON for COCO).

    Attributes:
        image_id: unique within ``dataset`` (SA-1B ``sa_<n>``, COCO the image id, folders the
            path below the root without extension).
        source_uri: the image (local path, ``s3://...``, or ``<tar>::<member>``).
        dataset: dataset name.
        annotation_kind: ``sa1b`` | ``coco`` | ``labelmap`` | ``none`` | ``shard``.
        annotation_uri: where the annotation file is ("" when inline or absent).
        annotation: inline annotation bytes (COCO per-image JSON, shard RLE JSON) or None.
        label_mode: label-map mode for ``labelmap`` items, else "".
        error: ``"<code>: <detail>"`` when the item is already known to be bad, else None.
        image_offset, image_size, annotation_offset, annotation_size: byte ranges of tar
            members inside their tar (-1 when not a tar member or unknown).
    """

    image_id: str
    source_uri: str
    dataset: str
    annotation_kind: str
    annotation_uri: str = ""
    annotation: bytes | None = None
    label_mode: str = ""
    error: str | None = None
    image_offset: int = -1
    image_size: int = -1
    annotation_offset: int = -1
    annotation_size: int = -1

    def to_row(self) -> dict[str, Any]:
        """Arrow-friendly dict: no None (so every block of ``from_items`` has one schema)."""
        row = asdict(self)
        row["annotation"] = self.annotation if self.annotation is not None else b""
        row["has_annotation"] = self.annotation is not None
        row["error"] = self.error or ""
        return row


ITEM_FIELDS = tuple(f.name for f in fields(SourceItem))


def item_schema() -> pa.Schema:
    """Arrow schema of a listing table (the columns of :class:`SourceItem`)."""
    import pyarrow as pa

    strings = ("image_id", "source_uri", "dataset", "annotation_kind", "annotation_uri")
    cols = [(name, pa.string()) for name in strings]
    cols += [("annotation", pa.binary()), ("label_mode", pa.string()), ("error", pa.string())]
    cols += [(name, pa.int64()) for name in ITEM_FIELDS[8:]]
    return pa.schema(cols)


class ItemColumns:
    """Builds a listing table: rows go to Python lists, every 65,536 rows into an Arrow record
    batch, so no Python object per image outlives its chunk."""

    CHUNK = 65_536

    def __init__(self) -> None:
        self.batches: list[Any] = []
        self.cols: dict[str, list[Any]] = {name: [] for name in ITEM_FIELDS}

    def add(
        self,
        image_id: str,
        source_uri: str,
        dataset: str,
        kind: str,
        annotation_uri: str = "",
        annotation: bytes | None = None,
        label_mode: str = "",
        error: str | None = None,
        image_offset: int = -1,
        image_size: int = -1,
        annotation_offset: int = -1,
        annotation_size: int = -1,
    ) -> None:
        values = (image_id, source_uri, dataset, kind, annotation_uri, annotation, label_mode)
        values += (error, image_offset, image_size, annotation_offset, annotation_size)
        for column, value in zip(self.cols.values(), values):
            column.append(value)
        if len(self.cols["image_id"]) >= self.CHUNK:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        if self.cols["image_id"]:
            self.batches.append(pa.record_batch(self.cols, schema=item_schema()))
            self.cols = {name: [] for name in ITEM_FIELDS}

    def table(self) -> pa.Table:
        import pyarrow as pa

        self._flush()
        return pa.Table.from_batches(self.batches, schema=item_schema())


def items_of(table: pa.Table) -> list[SourceItem]:
    """The rows of a listing table as :class:`SourceItem` (small inputs, tests)."""
    return [SourceItem(**{k: row[k] for k in ITEM_FIELDS}) for row in table.to_pylist()]


def table_of(items: list[SourceItem]) -> pa.Table:
    """Inverse of :func:`items_of`."""
    import pyarrow as pa

    cols = {name: [getattr(i, name) for i in items] for name in ITEM_FIELDS}
    return pa.table(cols, schema=item_schema())


# ----------------------------------------------------------------------------- helpers


def stem(rel: str) -> str:
    """``"sub/a.jpg"`` -> ``"sub/a"`` (folder sources' image ids)."""
    return os.path.splitext(rel)[0]


def sorted_unique(table: pa.Table) -> pa.Table:
    """Sort by id; ids that collide (``a.jpg`` + ``a.png``) keep their extension to stay unique.

    Raises:
        ValueError: ids still collide after that.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = table["image_id"]
    counts = pc.value_counts(ids)
    if (pc.max(counts.field("counts")).as_py() or 0) > 1:
        dup = set(counts.filter(pc.greater(counts.field("counts"), 1)).field("values").to_pylist())
        new_ids = []
        for image_id, uri in zip(ids.to_pylist(), table["source_uri"].to_pylist(), strict=True):
            if image_id in dup:
                _, member = fs.split_member(uri)
                image_id += os.path.splitext(member or uri)[1]
            new_ids.append(image_id)
        table = table.set_column(0, "image_id", pa.array(new_ids, pa.string()))
        counts = pc.value_counts(table["image_id"])
        again = counts.filter(pc.greater(counts.field("counts"), 1)).field("values")
        if len(again):
            raise ValueError(f"duplicate image ids within one dataset: {again.to_pylist()[:5]}")
    return table.take(pc.sort_indices(table["image_id"]))


# ----------------------------------------------------------------------------- selection


def require_input(input: str) -> None:
    """``ValueError`` naming ``--input`` unless it is a file or a folder (prefix)."""
    if not (fs.is_dir(input) or fs.is_file(input)):
        raise ValueError(f"--input {input!r}: no such file or directory")


def dataset_name(spec: SourceSpec) -> str:
    """``spec.dataset``, else a name from the input path (``.../SA1B/tars`` -> ``tars``)."""
    if spec.dataset:
        return spec.dataset
    _, path = fs.split_scheme(spec.input)
    base = os.path.basename(path.split("?", 1)[0].rstrip("/"))
    return stem(base) or str(spec.type)


def split_cut(n: int, split: str) -> tuple[int, int]:
    """``[start, stop)`` of ``split`` among ``n`` sorted entries: the last ``ceil(1%)`` is val."""
    if split == "all":
        return 0, n
    cut = n - math.ceil(n * VAL_FRACTION)
    return (0, cut) if split == "train" else (cut, n)


def split_rows(table: pa.Table, split: str) -> pa.Table:
    """The rows of ``split`` of a table sorted by id (sources without an official split)."""
    start, stop = split_cut(table.num_rows, split)
    return table.slice(start, stop - start)


def select_rows(table: pa.Table, num_samples: int | None, seed: int | None) -> pa.Table:
    """First ``num_samples`` rows in sorted-id order, or a seeded random subset (kept sorted)."""
    if num_samples is None or num_samples >= table.num_rows:
        return table
    if seed is None:
        return table.slice(0, num_samples)
    import numpy as np

    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(table.num_rows, num_samples, replace=False))
    return table.take(keep)
