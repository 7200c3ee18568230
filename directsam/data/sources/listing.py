"""Driver-side listing of file sources -> Arrow tables of items in sorted ``image_id`` order.

Folders (SA-1B extracted, label maps, plain images) and COCO-style JSON are listed in O(files)
requests (one LIST per prefix page, plus the one annotation JSON for COCO) and held as one
Arrow table (:data:`ITEM_SCHEMA`), not as a Python object per image. SA-1B *tars* are not
listed here: their plan is the tar objects themselves (``directsam.data.sources.plan``).
Every image found becomes exactly one row; problems known at listing time (an SA-1B image
without its JSON, a label-map image without its label) become rows with ``error`` set.

:class:`SourceItem` is a convenience view of one row for small inputs and tests.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from directsam.data.sources import fs
from directsam.data.sources.objects import list_objects, stat_object
from directsam.schema import ANNOTATION_INVALID, ANNOTATION_MISSING

if TYPE_CHECKING:
    import pyarrow as pa

    from directsam.data.sources.store import StoreOptions

SOURCE_TYPES: tuple[str, ...] = ("sa1b", "coco", "labelmap", "images", "shards")
SPLITS: tuple[str, ...] = ("all", "train", "val")
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


def _stem(rel: str) -> str:
    return os.path.splitext(rel)[0]


def _sa1b_id(name: str) -> str:
    from directsam.data.sa1b import sa1b_image_id

    return sa1b_image_id(name)


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


# ----------------------------------------------------------------------------- sa1b folders


def list_sa1b_folder(folder: str, dataset: str, out: ItemColumns) -> None:
    """One extracted SA-1B folder (``sa_<n>.jpg`` + ``sa_<n>.json``) into ``out``."""
    from directsam.schema import InputError

    files = fs.list_files(folder, (".jpg", ".jpeg", ".json"), recursive=False)
    jsons = {_stem(f.rel): f for f in files if f.rel.lower().endswith(".json")}
    for f in files:
        if f.rel.lower().endswith(".json"):
            continue
        ann = jsons.get(_stem(f.rel))
        err = None if ann else f"{ANNOTATION_MISSING}: {f.uri}: no {_stem(f.rel)}.json beside it"
        try:
            image_id = _sa1b_id(f.rel)
        except InputError as bad:
            image_id, err = _stem(f.rel), str(bad)
        out.add(image_id, f.uri, dataset, "sa1b", annotation_uri=ann.uri if ann else "", error=err)


def sa1b_layout(input: str, store: StoreOptions) -> tuple[str, list[Any]]:
    """Which SA-1B layout ``input`` is: ``("tars", [ObjectInfo])`` or ``("folders", [uris])``.

    Accepts a ``.tar`` file, a directory of tars (one LIST per 1,000 objects), one extracted
    folder (``sa_*.jpg`` + ``.json``) or a root holding one folder per extracted tar.

    Raises:
        FileNotFoundError: none of those.
    """
    if input.lower().endswith(".tar"):
        info = stat_object(input, store)
        if info is not None:
            return "tars", [info]
    tars = list_objects(input, ".tar", store)
    if tars:
        return "tars", tars
    if not fs.is_dir(input):
        raise FileNotFoundError(f"--input {input!r}: no such directory or .tar file")
    if fs.list_files(input, (".jpg", ".jpeg"), recursive=False):
        return "folders", [input]
    folders = [d for d in fs.list_dirs(input) if fs.list_files(d, (".jpg", ".jpeg"), False)]
    if not folders:
        raise FileNotFoundError(f"--input {input!r}: no .tar shards, no .jpg, no folders of .jpg")
    return "folders", folders


def list_sa1b(input: str, dataset: str) -> list[SourceItem]:
    """Items of an extracted SA-1B layout (one folder, or a root of folders), sorted by id."""
    kind, parts = sa1b_layout(input, fs.current_store())
    if kind != "folders":
        raise ValueError(f"--input {input!r} holds tars: plan it with plan_source")
    out = ItemColumns()
    for folder in parts:
        list_sa1b_folder(folder, dataset, out)
    return items_of(sorted_unique(out.table()))


# ----------------------------------------------------------------------------- coco


def coco_paths(input: str, annotations: str | None) -> tuple[str, str]:
    """(image root, annotation JSON) for a COCO-style source.

    ``annotations`` given: images are under ``input``. Otherwise ``input`` is a directory with
    exactly one top-level ``*.json`` and images under ``input/images`` (or ``input`` itself).
    """
    if annotations:
        return input, annotations
    if input.lower().endswith(".json"):
        raise ValueError(
            f"--input {input!r} is a JSON file: pass it as --annotations and the "
            "image folder as --input"
        )
    jsons = [f.uri for f in fs.list_files(input, (".json",), recursive=False)]
    if len(jsons) != 1:
        raise ValueError(
            f"--annotations is required: {input!r} holds {len(jsons)} top-level "
            "JSON files, expected exactly one"
        )
    images = fs.join(input, "images")
    return (images if fs.is_dir(images) else input), jsons[0]


def list_coco(input: str, annotations: str | None, dataset: str, out: ItemColumns) -> None:
    """COCO / LVIS / PACO / Fashionpedia / COCONut / EntitySeg instance JSON into ``out``.

    Each item carries its own slice of the JSON inline (:func:`directsam.data.coco.coco_record`),
    so workers never load the (up to GBs) whole file. LVIS entries without ``file_name`` use the
    basename of ``coco_url``.
    """
    from directsam.data.coco import coco_image_id, coco_record, parse_coco_json
    from directsam.schema import InputError

    image_root, ann_uri = coco_paths(input, annotations)
    try:
        doc = json.loads(fs.read_uri(ann_uri))
        for img in doc.get("images", []) if isinstance(doc, dict) else []:
            if isinstance(img, dict) and not img.get("file_name") and img.get("coco_url"):
                img["file_name"] = os.path.basename(str(img["coco_url"]))
        images, by_image = parse_coco_json(doc, ann_uri)
    except (ValueError, InputError) as err:
        # The whole file is unusable: a configuration problem, not one bad row.
        raise ValueError(f"--annotations {ann_uri!r}: {err}") from None
    for img in images:
        # file_name is joined to the image root: absolute names and '..' would read outside it.
        name = str(img["file_name"]).replace("\\", "/")
        error = None
        if name.startswith("/") or ".." in name.split("/") or ":" in name.split("/")[0]:
            error = (
                f"{ANNOTATION_INVALID}: {ann_uri}: image {img['id']!r} file_name "
                f"{img['file_name']!r} points outside the image root {image_root}"
            )
        out.add(
            coco_image_id(img),
            fs.join(image_root, img["file_name"]),
            dataset,
            "coco",
            annotation=coco_record(img, by_image[img["id"]]),
            error=error,
        )


# ----------------------------------------------------------------------------- folders


def labelmap_paths(input: str, labels: str | None) -> tuple[str, str]:
    """(image dir, label dir): ``--labels``, or ``input/images`` + ``input/labels``."""
    if labels:
        return input, labels
    images, labs = fs.join(input, "images"), fs.join(input, "labels")
    if fs.is_dir(images) and fs.is_dir(labs):
        return images, labs
    raise ValueError(f"--labels is required: {input!r} has no images/ + labels/ sub-folders")


def list_labelmap(
    input: str, labels: str | None, mode: str, dataset: str, out: ItemColumns
) -> None:
    """Image folder + label folder paired by relative path without extension, into ``out``."""
    image_dir, label_dir = labelmap_paths(input, labels)
    label_files = {_stem(f.rel): f.uri for f in fs.list_files(label_dir, fs.IMAGE_EXTENSIONS)}
    for f in fs.list_files(image_dir, fs.IMAGE_EXTENSIONS):
        label = label_files.get(_stem(f.rel))
        error = None
        if label is None:
            error = f"{ANNOTATION_MISSING}: {f.uri}: no label {_stem(f.rel)}.* in {label_dir}"
        out.add(
            _stem(f.rel),
            f.uri,
            dataset,
            "labelmap",
            annotation_uri=label or "",
            label_mode=mode,
            error=error,
        )


def list_images(input: str, dataset: str, out: ItemColumns) -> None:
    for f in fs.list_files(input, fs.IMAGE_EXTENSIONS):
        out.add(_stem(f.rel), f.uri, dataset, "none")


# ----------------------------------------------------------------------------- selection


def default_dataset_name(source: str, input: str) -> str:
    """A dataset name from the input path (``.../SA1B/tars`` -> ``tars``)."""
    _, path = fs.split_scheme(input)
    base = os.path.basename(path.split("?", 1)[0].rstrip("/"))
    return _stem(base) or source


def split_cut(n: int, split: str) -> tuple[int, int]:
    """``[start, stop)`` of ``split`` among ``n`` sorted entries: the last ``ceil(1%)`` is val."""
    if split == "all":
        return 0, n
    cut = n - math.ceil(n * VAL_FRACTION)
    return (0, cut) if split == "train" else (cut, n)


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
