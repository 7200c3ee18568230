"""COCO-JSON instance annotations -> image entries and, per image, a list of compressed RLEs.

A COCO file holds every image of a split; sources split it into one record per image,
``{"image": {...}, "annotations": [...]}`` (the same shape as an SA-1B JSON), which travels in
the row's ``annotation`` column and is turned into RLEs by :func:`parse_coco_record`.
Segmentations may be polygons, uncompressed RLE (crowd regions) or compressed RLE (LVIS,
EntitySeg, ...); all become compressed RLE at the image size.
"""

from __future__ import annotations

import json
from typing import Any

from directsam.data.rle import segmentation_to_rle
from directsam.schema import ANNOTATION_INVALID, RLE_SIZE_MISMATCH, InputError


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def coco_image_id(image: dict[str, Any]) -> str:
    """The shard ``image_id`` of a COCO image entry: its ``id`` as a string."""
    return str(image["id"])


def _check_image(image: Any, name: str) -> dict[str, Any]:
    if not isinstance(image, dict):
        raise InputError(ANNOTATION_INVALID, f"{name}: image entry must be an object")
    if (
        "id" not in image
        or not isinstance(image["id"], (int, str))
        or isinstance(image["id"], bool)
    ):
        raise InputError(ANNOTATION_INVALID, f"{name}: image entry needs an int or string 'id'")
    if not isinstance(image.get("file_name"), str) or not image["file_name"]:
        raise InputError(ANNOTATION_INVALID, f"{name}: image {image['id']} has no 'file_name'")
    for key in ("height", "width"):
        if key in image and not (_is_int(image[key]) and image[key] > 0):
            raise InputError(
                ANNOTATION_INVALID, f"{name}: image {image['id']} {key} must be a positive int"
            )
    return image


def parse_coco_json(
    data: bytes | str | dict[str, Any], name: str = "<coco json>"
) -> tuple[list[dict[str, Any]], dict[Any, list[dict[str, Any]]]]:
    """Index a COCO instances file.

    Args:
        data: the file's bytes/text, or the already-loaded dict.
        name: file name for error messages.

    Returns:
        ``(images, anns_by_image)``: image entries (as in the file, each with ``id`` and
        ``file_name``; ``height``/``width`` checked when present) sorted by ``coco_image_id``,
        and the annotations of each image id in file order (images without annotations map to
        an empty list).

    Raises:
        InputError(ANNOTATION_INVALID): invalid JSON, missing ``images``/``annotations``, an
        annotation whose ``image_id`` names no image, duplicate image ids.
    """
    if isinstance(data, dict):
        doc = data
    else:
        try:
            doc = json.loads(data)
        except (ValueError, TypeError) as err:
            raise InputError(ANNOTATION_INVALID, f"{name}: invalid JSON ({err})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise InputError(ANNOTATION_INVALID, f"{name}: a COCO file needs an 'images' list")
    anns = doc.get("annotations", [])
    if not isinstance(anns, list):
        raise InputError(ANNOTATION_INVALID, f"{name}: 'annotations' must be a list")
    images = [_check_image(image, name) for image in doc["images"]]
    by_image: dict[Any, list[dict[str, Any]]] = {}
    for image in images:
        if image["id"] in by_image:
            raise InputError(ANNOTATION_INVALID, f"{name}: duplicate image id {image['id']!r}")
        by_image[image["id"]] = []
    for k, ann in enumerate(anns):
        if not isinstance(ann, dict) or "image_id" not in ann:
            raise InputError(ANNOTATION_INVALID, f"{name}: annotation {k} has no image_id")
        if ann["image_id"] not in by_image:
            raise InputError(
                ANNOTATION_INVALID,
                f"{name}: annotation {k} refers to unknown image {ann['image_id']!r}",
            )
        by_image[ann["image_id"]].append(ann)
    images.sort(key=coco_image_id)
    return images, by_image


def coco_record(image: dict[str, Any], anns: list[dict[str, Any]]) -> bytes:
    """One image's record ``{"image": ..., "annotations": [...]}`` as JSON bytes (row payload)."""
    return json.dumps({"image": image, "annotations": anns}, separators=(",", ":")).encode()


def coco_annotations_to_rles(
    anns: list[dict[str, Any]],
    height: int,
    width: int,
    name: str = "",
    include_crowd: bool = True,
) -> list[dict[str, Any]]:
    """Segmentations of one image's annotations as compressed RLEs ``{"size": [h, w], "counts"}``.

    Args:
        anns: COCO annotation dicts of one image (``segmentation`` required, ``iscrowd``
            optional).
        height, width: the image size the segmentations are drawn on.
        name: image name for error messages.
        include_crowd: keep ``iscrowd: 1`` regions (the seed kept every annotation).

    Raises:
        InputError(ANNOTATION_INVALID | RLE_SIZE_MISMATCH): see
            :func:`directsam.data.rle.segmentation_to_rle`.
    """
    rles = []
    for k, ann in enumerate(anns):
        label = f"{name or '<coco>'} annotation {ann.get('id', k) if isinstance(ann, dict) else k}"
        if not isinstance(ann, dict) or "segmentation" not in ann:
            raise InputError(ANNOTATION_INVALID, f"{label}: no segmentation")
        if not include_crowd and ann.get("iscrowd", 0):
            continue
        rles.append(segmentation_to_rle(ann["segmentation"], height, width, label))
    return rles


def parse_coco_record(
    data: bytes | str,
    name: str = "<coco record>",
    image_hw: tuple[int, int] | None = None,
    include_crowd: bool = True,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Parse a per-image record made by :func:`coco_record`.

    Args:
        data: the record's JSON bytes.
        name: image name for error messages.
        image_hw: the decoded image's ``(H, W)``; required when the image entry has no
            height/width, checked against them otherwise.
        include_crowd: see :func:`coco_annotations_to_rles`.

    Returns:
        ``(info, rles)`` with info ``{"image_id": str, "width", "height", "file_name"}``, as
        :func:`directsam.data.sa1b.parse_sa1b_annotation` returns.

    Raises:
        InputError(ANNOTATION_INVALID): malformed record or segmentation; no size known.
        InputError(RLE_SIZE_MISMATCH): the entry's size or an RLE's size differs from the image.
    """
    try:
        doc = json.loads(data)
    except (ValueError, TypeError) as err:
        raise InputError(ANNOTATION_INVALID, f"{name}: invalid JSON ({err})") from None
    if (
        not isinstance(doc, dict)
        or "image" not in doc
        or not isinstance(doc.get("annotations"), list)
    ):
        raise InputError(
            ANNOTATION_INVALID, f"{name}: record needs 'image' and an 'annotations' list"
        )
    image = _check_image(doc["image"], name)
    entry_hw = (image.get("height"), image.get("width"))
    if image_hw is not None:
        hw = (int(image_hw[0]), int(image_hw[1]))
        if entry_hw != (None, None) and entry_hw != hw:
            raise InputError(
                RLE_SIZE_MISMATCH,
                f"{name}: annotation size {list(entry_hw)} != image size {list(hw)}",
            )
    elif None in entry_hw:
        raise InputError(ANNOTATION_INVALID, f"{name}: image entry has no height/width")
    else:
        hw = (int(entry_hw[0]), int(entry_hw[1]))
    info = {
        "image_id": coco_image_id(image),
        "width": hw[1],
        "height": hw[0],
        "file_name": image["file_name"],
    }
    return info, coco_annotations_to_rles(doc["annotations"], hw[0], hw[1], name, include_crowd)
