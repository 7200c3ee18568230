"""The ``coco`` source: COCO-style instance JSON (COCO, LVIS, PACO, Fashionpedia, COCONut,
EntitySeg) + an image root.

The JSON is read once on the driver; each item carries its own slice of it inline
(:func:`directsam.data.coco.coco_record`), so workers never load the (up to GBs) whole file.
The input *is* the split (``--split`` selects nothing here).
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

from directsam.data.sources import fs
from directsam.data.sources.listing import ItemColumns, dataset_name, require_input, sorted_unique
from directsam.schema import ANNOTATION_INVALID

if TYPE_CHECKING:
    import pyarrow as pa

    from directsam.data.sources.spec import SourceSpec
    from directsam.data.sources.store import StoreOptions


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


def list_coco_json(input: str, annotations: str | None, dataset: str, out: ItemColumns) -> None:
    """The images of one instance JSON into ``out``. LVIS entries without ``file_name`` use the
    basename of ``coco_url``."""
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


def list_coco(spec: SourceSpec, store: StoreOptions) -> pa.Table:
    """The lister of ``coco``: the listing table, sorted by id."""
    require_input(spec.input)
    out = ItemColumns()
    list_coco_json(spec.input, spec.annotations, dataset_name(spec), out)
    return sorted_unique(out.table())
