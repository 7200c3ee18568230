"""SA-1B annotation JSON bytes -> (image info, list of RLE dicts), and SA-1B image ids.

SA-1B stores one ``sa_<n>.json`` beside each ``sa_<n>.jpg``: ``{"image": {image_id, width,
height, file_name}, "annotations": [{id, segmentation: {size, counts}, bbox, area,
predicted_iou, stability_score, crop_box, point_coords}, ...]}`` with COCO compressed RLE
masks at the image's size.
"""

from __future__ import annotations

import json
import re
from typing import Any

from directsam.schema import ANNOTATION_INVALID, RLE_SIZE_MISMATCH, InputError

_SA1B_ID = re.compile(r"^(sa_\d+)(?:\.[A-Za-z0-9]+)*$")


def sa1b_image_id(file_name_or_key: str) -> str:
    """``"sa_223750"`` from ``"sa_223750.jpg"``, ``"sa_223750.json"``, a path ending in one, or
    a webdataset key such as ``"sa_000020/sa_223750"``.

    Raises:
        InputError(ANNOTATION_INVALID): the name is not an SA-1B file name.
    """
    base = str(file_name_or_key).replace("\\", "/").rsplit("/", 1)[-1]
    match = _SA1B_ID.match(base)
    if not match:
        raise InputError(
            ANNOTATION_INVALID, f"{file_name_or_key}: not an SA-1B file name (expected sa_<n>.jpg)"
        )
    return match.group(1)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_image(image: Any, name: str) -> dict[str, Any]:
    if not isinstance(image, dict):
        raise InputError(ANNOTATION_INVALID, f"{name}: 'image' must be an object")
    missing = [k for k in ("width", "height") if k not in image]
    if missing:
        raise InputError(ANNOTATION_INVALID, f"{name}: 'image' is missing {missing}")
    width, height = image["width"], image["height"]
    if not (_is_int(width) and _is_int(height) and width > 0 and height > 0):
        raise InputError(
            ANNOTATION_INVALID,
            f"{name}: image width/height must be positive ints, got {width!r} x {height!r}",
        )
    file_name = image.get("file_name")
    raw_id = image.get("image_id")
    if file_name is not None and not isinstance(file_name, str):
        raise InputError(ANNOTATION_INVALID, f"{name}: image file_name must be a string")
    if raw_id is not None and not _is_int(raw_id):
        raise InputError(ANNOTATION_INVALID, f"{name}: image image_id must be an int")
    if file_name:
        # SA-1B-format files from elsewhere keep their own names: the id is then the stem.
        base = file_name.replace("\\", "/").rsplit("/", 1)[-1]
        match = _SA1B_ID.match(base)
        image_id = match.group(1) if match else base.rsplit(".", 1)[0]
    elif raw_id is not None:
        image_id = f"sa_{raw_id}"
        file_name = f"{image_id}.jpg"
    else:
        raise InputError(ANNOTATION_INVALID, f"{name}: 'image' has neither file_name nor image_id")
    return {"image_id": image_id, "width": width, "height": height, "file_name": file_name}


def parse_sa1b_annotation(data: bytes | str, name: str = "<sa1b json>") -> tuple[dict, list[dict]]:
    """Parse one SA-1B annotation file.

    Only the structure is checked here (cheap); the counts strings are validated when decoded
    (:func:`directsam.data.rle.rle_to_runs`, used by ``rle_to_mask`` and ``masks_to_boundary``).

    Args:
        data: the JSON file's bytes (or text).
        name: file name or key, quoted in error messages.

    Returns:
        ``(info, rles)``: info ``{"image_id": str, "width": int, "height": int,
        "file_name": str}`` (image_id ``"sa_<n>"`` for SA-1B names, else the file name's
        stem; ``"sa_<image_id>"`` when there is no file name); rles ``[{"size": [height, width], "counts": str}, ...]`` in file
        order (may be empty).

    Raises:
        InputError(ANNOTATION_INVALID): invalid JSON, missing keys, wrong types.
        InputError(RLE_SIZE_MISMATCH): a mask's size differs from the image's.
    """
    try:
        doc = json.loads(data)
    except (ValueError, TypeError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InputError(ANNOTATION_INVALID, f"{name}: invalid JSON ({err})") from None
    if not isinstance(doc, dict):
        raise InputError(ANNOTATION_INVALID, f"{name}: top level must be an object")
    if "image" not in doc or "annotations" not in doc:
        missing = [k for k in ("image", "annotations") if k not in doc]
        raise InputError(ANNOTATION_INVALID, f"{name}: missing key(s) {missing}")
    info = _parse_image(doc["image"], name)
    anns = doc["annotations"]
    if not isinstance(anns, list):
        raise InputError(ANNOTATION_INVALID, f"{name}: 'annotations' must be a list")
    hw = [info["height"], info["width"]]
    rles = []
    for k, ann in enumerate(anns):
        seg = ann.get("segmentation") if isinstance(ann, dict) else None
        if not isinstance(seg, dict) or "size" not in seg or "counts" not in seg:
            raise InputError(
                ANNOTATION_INVALID, f"{name}: annotation {k} has no segmentation {{size, counts}}"
            )
        size, counts = seg["size"], seg["counts"]
        if not (isinstance(size, list) and len(size) == 2 and all(_is_int(v) for v in size)):
            raise InputError(ANNOTATION_INVALID, f"{name}: annotation {k} size must be [h, w] ints")
        if not isinstance(counts, str):
            raise InputError(
                ANNOTATION_INVALID, f"{name}: annotation {k} counts must be a compressed RLE string"
            )
        if size != hw:
            raise InputError(
                RLE_SIZE_MISMATCH, f"{name}: annotation {k} RLE size {size} != image size {hw}"
            )
        rles.append({"size": [size[0], size[1]], "counts": counts})
    return info, rles
