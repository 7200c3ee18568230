"""Token records -> SA-1B-style annotation documents (``image`` + ``annotations``) and files.

The layout is SA-1B's (``sa_<n>.json`` beside ``sa_<n>.jpg``): anything that reads SA-1B or
SAM's ``amg.py --convert-to-rle`` output reads these, and so does our own ``sa1b`` source.
DirectSAM-specific facts (checkpoint, threshold, source) sit under a top-level ``directsam``
key that SA-1B readers ignore.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from directsam.atomic import write_atomic

_SA_ID = re.compile(r"^sa_(\d+)$")


def sa1b_document(
    image_id: str,
    height: int,
    width: int,
    records: list[dict[str, Any]],
    file_name: str | None = None,
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One SA-1B annotation document.

    Args:
        image_id: our image id (``sa_<n>`` keeps SA-1B's integer ``image_id``).
        height, width: the image's size (the RLE size).
        records: token records from :func:`directsam.delivery.tokens.labels_to_records`.
        file_name: the image's file name (default ``<basename of image_id>.jpg``).
        meta: extra facts stored under ``"directsam"`` (checkpoint, threshold, ...).

    Returns:
        ``{"image": {image_id?, width, height, file_name}, "annotations": [{id, segmentation,
        area, bbox, boundary_confidence, point_coords, crop_box}], "directsam": {...}}``.
    """
    image: dict[str, Any] = {}
    match = _SA_ID.match(image_id.rsplit("/", 1)[-1])
    if match:
        image["image_id"] = int(match.group(1))
    image.update(
        width=int(width),
        height=int(height),
        file_name=file_name or f"{image_id.rsplit('/', 1)[-1]}.jpg",
    )
    annotations = [{"id": i, **rec} for i, rec in enumerate(records)]
    doc = {"image": image, "annotations": annotations}
    doc["directsam"] = {"image_id": image_id, **(meta or {})}
    return doc


def safe_relpath(image_id: str) -> Path:
    """A relative output path for an image id (``a/b`` stays nested; ``..``/absolute refused)."""
    parts = [p for p in image_id.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        raise ValueError(f"image id {image_id!r} cannot name an output file")
    return Path(*parts)


def write_sa1b(
    output: str | os.PathLike[str],
    document: dict[str, Any] | str,
    image_bytes: bytes | None = None,
) -> Path:
    """Write ``<output>/<image_id>.json`` (and the image beside it, when given); returns the JSON.

    Args:
        output: output root.
        document: from :func:`sa1b_document` (or its JSON text).
        image_bytes: the image as stored; written as ``image.file_name`` beside the JSON so
            the folder is an SA-1B folder (``directsam segment --copy-images``).
    """
    doc = json.loads(document) if isinstance(document, str) else document
    rel = safe_relpath(doc["directsam"]["image_id"])
    path = Path(output) / rel.parent / f"{rel.name}.json"
    text = document if isinstance(document, str) else json.dumps(document, separators=(",", ":"))
    write_atomic(path, text.encode())
    if image_bytes is not None:
        write_atomic(path.parent / doc["image"]["file_name"], bytes(image_bytes))
    return path
