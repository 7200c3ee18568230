"""Driver-side listing of every source type -> ``SourceItem``s in sorted ``image_id`` order.

Listing reads only names, tar headers and (COCO) the one annotation JSON; image bytes are read
later, in parallel Ray tasks. Every image found becomes exactly one item; problems known at
listing time (an SA-1B image without its JSON, a label-map image without its label, a tar that
cannot be opened) become items with ``error`` set rather than disappearing.
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from directsam.data.sources import fs
from directsam.schema import ANNOTATION_INVALID, ANNOTATION_MISSING, READ_FAILED

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


# ----------------------------------------------------------------------------- helpers


def _stem(rel: str) -> str:
    return os.path.splitext(rel)[0]


def _wds_key(name: str) -> tuple[str, str]:
    """webdataset grouping: ``dir/sa_1.jpg`` -> (``dir/sa_1``, ``jpg``) (split at the first dot)."""
    head, base = os.path.split(name)
    key, _, ext = base.partition(".")
    return (f"{head}/{key}" if head else key), ext.lower()


def _sa1b_id(name: str) -> str:
    from directsam.data.sa1b import sa1b_image_id

    return sa1b_image_id(name)


def _dedupe_ids(items: list[SourceItem]) -> list[SourceItem]:
    """Sort by id; ids that collide (``a.jpg`` + ``a.png``) keep their extension to stay unique."""
    counts: dict[str, int] = defaultdict(int)
    for item in items:
        counts[item.image_id] += 1
    for item in items:
        if counts[item.image_id] > 1:
            _, member = fs.split_member(item.source_uri)
            ext = os.path.splitext(member or item.source_uri)[1]
            item.image_id = item.image_id + ext
    ids = [i.image_id for i in items]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise ValueError(f"duplicate image ids within one dataset: {dup}")
    return sorted(items, key=lambda i: i.image_id)


# ----------------------------------------------------------------------------- sa1b


def _sa1b_folder(folder: str, dataset: str) -> list[SourceItem]:
    files = fs.list_files(folder, (".jpg", ".jpeg", ".json"), recursive=False)
    jsons = {_stem(f.rel): f for f in files if f.rel.lower().endswith(".json")}
    items = []
    for f in files:
        if f.rel.lower().endswith(".json"):
            continue
        ann = jsons.get(_stem(f.rel))
        err = None if ann else f"{ANNOTATION_MISSING}: {f.uri}: no {_stem(f.rel)}.json beside it"
        items.append(
            SourceItem(_sa1b_id(f.rel), f.uri, dataset, "sa1b", ann.uri if ann else "", error=err)
        )
    return items


def _sa1b_tar(tar_uri: str, dataset: str) -> list[SourceItem]:
    try:
        index = fs.tar_index(tar_uri)
    except Exception as err:  # noqa: BLE001 - any unreadable tar becomes one failed row
        name = os.path.basename(tar_uri)
        detail = f"{READ_FAILED}: {tar_uri}: cannot list tar: {type(err).__name__}: {err}"
        return [SourceItem(_stem(name), tar_uri, dataset, "sa1b", error=detail)]
    groups: dict[str, dict[str, tuple[str, int, int]]] = defaultdict(dict)
    for name, (offset, size) in index.items():
        key, ext = _wds_key(name)
        groups[key][ext] = (name, offset, size)
    items = []
    for key, members in groups.items():
        image = members.get("jpg") or members.get("jpeg")
        if image is None:
            continue  # a JSON without its image is not an input image
        ann = members.get("json")
        uri = f"{tar_uri}{fs.TAR_SEP}{image[0]}"
        item = SourceItem(_sa1b_id(key), uri, dataset, "sa1b", image_offset=image[1])
        item.image_size = image[2]
        if ann is None:
            item.error = f"{ANNOTATION_MISSING}: {uri}: no {key}.json in the tar"
        else:
            item.annotation_uri = f"{tar_uri}{fs.TAR_SEP}{ann[0]}"
            item.annotation_offset, item.annotation_size = ann[1], ann[2]
        items.append(item)
    return items


def sa1b_layout(input: str) -> tuple[str, list[str]]:
    """Which SA-1B layout ``input`` is: ``("tars", [tar uris])`` or ``("folders", [folders])``.

    Accepts a ``.tar`` file, a directory of tars, one extracted folder (``sa_*.jpg`` + ``.json``)
    or a root holding one folder per extracted tar.
    """
    if input.lower().endswith(".tar") and fs.is_file(input):
        return "tars", [input]
    if not fs.is_dir(input):
        raise FileNotFoundError(f"--input {input!r}: no such directory or .tar file")
    tars = [f.uri for f in fs.list_files(input, (".tar",), recursive=False)]
    if tars:
        return "tars", tars
    if fs.list_files(input, (".jpg", ".jpeg"), recursive=False):
        return "folders", [input]
    folders = [d for d in fs.list_dirs(input) if fs.list_files(d, (".jpg", ".jpeg"), False)]
    if not folders:
        raise FileNotFoundError(f"--input {input!r}: no .tar shards, no .jpg, no folders of .jpg")
    return "folders", folders


def list_sa1b(input: str, dataset: str) -> list[SourceItem]:
    kind, parts = sa1b_layout(input)
    one = _sa1b_tar if kind == "tars" else _sa1b_folder
    # Listing tars on an object store is latency-bound (one ranged read per header): threads.
    with ThreadPoolExecutor(max_workers=min(16, len(parts))) as pool:
        chunks = list(pool.map(lambda p: one(p, dataset), parts))
    return [item for chunk in chunks for item in chunk]


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


def list_coco(input: str, annotations: str | None, dataset: str) -> list[SourceItem]:
    """COCO / LVIS / PACO / Fashionpedia / COCONut / EntitySeg instance JSON.

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
    items = [
        SourceItem(
            coco_image_id(img),
            fs.join(image_root, img["file_name"]),
            dataset,
            "coco",
            annotation=coco_record(img, by_image[img["id"]]),
        )
        for img in images
    ]
    for item, img in zip(items, images):
        # file_name is joined to the image root: absolute names and '..' would read outside it.
        name = str(img["file_name"]).replace("\\", "/")
        if name.startswith("/") or ".." in name.split("/") or ":" in name.split("/")[0]:
            item.error = (
                f"{ANNOTATION_INVALID}: {ann_uri}: image {img['id']!r} file_name "
                f"{img['file_name']!r} points outside the image root {image_root}"
            )
    return items


# ----------------------------------------------------------------------------- folders


def labelmap_paths(input: str, labels: str | None) -> tuple[str, str]:
    """(image dir, label dir): ``--labels``, or ``input/images`` + ``input/labels``."""
    if labels:
        return input, labels
    images, labs = fs.join(input, "images"), fs.join(input, "labels")
    if fs.is_dir(images) and fs.is_dir(labs):
        return images, labs
    raise ValueError(f"--labels is required: {input!r} has no images/ + labels/ sub-folders")


def list_labelmap(input: str, labels: str | None, mode: str, dataset: str) -> list[SourceItem]:
    """Image folder + label folder paired by relative path without extension."""
    image_dir, label_dir = labelmap_paths(input, labels)
    label_files = {_stem(f.rel): f.uri for f in fs.list_files(label_dir, fs.IMAGE_EXTENSIONS)}
    items = []
    for f in fs.list_files(image_dir, fs.IMAGE_EXTENSIONS):
        label = label_files.get(_stem(f.rel))
        item = SourceItem(_stem(f.rel), f.uri, dataset, "labelmap", label or "", label_mode=mode)
        if label is None:
            item.error = f"{ANNOTATION_MISSING}: {f.uri}: no label {_stem(f.rel)}.* in {label_dir}"
        items.append(item)
    return items


def list_images(input: str, dataset: str) -> list[SourceItem]:
    return [
        SourceItem(_stem(f.rel), f.uri, dataset, "none")
        for f in fs.list_files(input, fs.IMAGE_EXTENSIONS)
    ]


# ----------------------------------------------------------------------------- selection


def default_dataset_name(source: str, input: str) -> str:
    """A dataset name from the input path (``.../SA1B/tars`` -> ``tars``)."""
    _, path = fs.split_scheme(input)
    base = os.path.basename(path.rstrip("/"))
    return _stem(base) or source


def split_items(items: list[SourceItem], split: str) -> list[SourceItem]:
    """SA-1B / shards split: the last ``ceil(1% of n)`` items in sorted-id order are ``val``."""
    if split == "all":
        return items
    n_val = math.ceil(len(items) * VAL_FRACTION)
    cut = len(items) - n_val
    return items[:cut] if split == "train" else items[cut:]


def select_items(
    items: list[SourceItem], num_samples: int | None, seed: int | None
) -> list[SourceItem]:
    """First ``num_samples`` in sorted-id order, or a seeded random subset (kept sorted)."""
    if num_samples is None or num_samples >= len(items):
        return items
    if seed is None:
        return items[:num_samples]
    import numpy as np

    keep = np.sort(np.random.default_rng(seed).choice(len(items), num_samples, replace=False))
    return [items[int(i)] for i in keep]
