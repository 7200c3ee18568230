"""Source rows -> decoded rows: RGB at the model resolution + the human boundary target.

``decode_rows`` is the CPU stage shared by labeling, training and evaluation. It never raises
for one bad row: ``InputError``s become the row's ``error`` and its arrays are zero-filled.
"""

from __future__ import annotations

import json

import numpy as np
import numpy.typing as npt

from directsam.schema import (
    ANNOTATION,
    ANNOTATION_INVALID,
    ANNOTATION_KIND,
    ERROR,
    HEIGHT,
    IMAGE_BYTES,
    IMAGE_ID,
    LABEL_MAP_SIZE_MISMATCH,
    LABEL_MODE,
    RLE_SIZE_MISMATCH,
    SOURCE_URI,
    WIDTH,
    InputError,
)

IMAGE = "image"  # uint8 (R, R, 3) decoded + resized image
TARGET = "target"  # uint8 (R, R) 0/1 human boundary
HAS_TARGET = "has_target"  # bool: a target was built (annotation present and valid)


def resize_boundary(mask: npt.NDArray[np.bool_], size: int) -> npt.NDArray[np.bool_]:
    """Resize a boundary map to ``size`` x ``size`` without breaking thin lines.

    Downscaling marks an output pixel when any source pixel under it is boundary (area
    average > 0), so 1-pixel lines survive; upscaling is nearest neighbour.

    Args:
        mask: bool HxW.
        size: output side.

    Returns:
        bool size x size (the input itself when already that size).
    """
    h, w = mask.shape
    if (h, w) == (size, size):
        return mask
    if h >= size and w >= size:
        import cv2

        area = cv2.resize(mask.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
        return area > 0
    from directsam.data.decode import resize_label_map

    return resize_label_map(mask.astype(np.uint8), size) > 0


def _check_rles(rles: list[dict], image_hw: tuple[int, int], name: str) -> None:
    for k, rle in enumerate(rles):
        size = [int(v) for v in rle["size"]]
        if size != [int(image_hw[0]), int(image_hw[1])]:
            raise InputError(
                RLE_SIZE_MISMATCH,
                f"{name}: mask {k} RLE size {size} != image size {list(image_hw)}",
            )


def annotation_to_boundary(
    annotation: bytes | None,
    kind: str,
    image_hw: tuple[int, int],
    out_size: int,
    thickness: int,
    name: str,
    mode: str = "single_channel",
) -> npt.NDArray[np.bool_] | None:
    """The human boundary of one image at ``out_size`` x ``out_size``.

    Args:
        annotation: raw bytes as in the source row (SA-1B JSON, per-image COCO record,
            label-map PNG, or a shard's boundary RLE as JSON), or None.
        kind: ``sa1b`` | ``coco`` | ``labelmap`` | ``shard`` | ``none``.
        image_hw: the decoded image's (H, W); masks and label maps must match it.
        out_size: side of the square output (the model resolution).
        thickness: band thickness in output pixels (ignored for ``shard``: stored boundaries
            already have theirs).
        name: file or id for error messages.
        mode: label-map mode (``single_channel`` | ``force_binary`` | ``rgb``).

    Returns:
        bool out_size x out_size, or None when there is no annotation (``none`` / None).

    Raises:
        InputError: ANNOTATION_INVALID, RLE_SIZE_MISMATCH or LABEL_MAP_SIZE_MISMATCH.
    """
    if annotation is None or kind == "none":
        return None
    from directsam.data.boundary import label_map_to_boundary, masks_to_boundary

    if kind == "sa1b":
        from directsam.data.sa1b import parse_sa1b_annotation

        info, rles = parse_sa1b_annotation(annotation, name)
        if (info["height"], info["width"]) != tuple(image_hw):
            raise InputError(
                RLE_SIZE_MISMATCH,
                f"{name}: annotation size {[info['height'], info['width']]} != image size "
                f"{list(image_hw)}",
            )
        _check_rles(rles, image_hw, name)
        return masks_to_boundary(rles, out_size, thickness, name)
    if kind == "coco":
        from directsam.data.coco import parse_coco_record

        _, rles = parse_coco_record(annotation, name, image_hw=image_hw)
        _check_rles(rles, image_hw, name)
        return masks_to_boundary(rles, out_size, thickness, name)
    if kind == "labelmap":
        from directsam.data.decode import decode_label_map, resize_label_map

        labels = decode_label_map(annotation, name, mode)  # type: ignore[arg-type]
        if labels.shape != tuple(image_hw):
            raise InputError(
                LABEL_MAP_SIZE_MISMATCH,
                f"{name}: label map {list(labels.shape)} != image size {list(image_hw)}",
            )
        return label_map_to_boundary(resize_label_map(labels, out_size), thickness)
    if kind == "shard":
        from directsam.data.rle import rle_to_mask

        try:
            rle = json.loads(annotation)
        except ValueError as err:
            raise InputError(ANNOTATION_INVALID, f"{name}: stored boundary ({err})") from None
        return resize_boundary(rle_to_mask(rle, name=name), out_size)
    raise ValueError(f"unknown annotation kind {kind!r}")


def cell_text(value: object) -> str | None:
    """A string cell or None: Ray turns all-null object columns into NaN floats on the way."""
    return value if isinstance(value, str) and value else None


def _cell(batch: dict[str, np.ndarray], key: str, i: int, default=None):
    col = batch.get(key)
    return default if col is None else col[i]


def decode_rows(
    batch: dict[str, np.ndarray],
    resolution: int,
    thickness: int | None,
    keep_image: bool = True,
    header_only: bool = False,
) -> dict[str, np.ndarray]:
    """Batch function: decode images, resize, and build human boundary targets.

    Args:
        batch: source rows (``image_bytes``, ``annotation``, ``annotation_kind``, ``error``,
            optional ``label_mode``, ...).
        resolution: side R of the square outputs.
        thickness: band thickness of the target; None skips targets.
        keep_image: emit the ``image`` column (False when only targets are needed).
        header_only: take the image size from the header instead of decoding the pixels
            (for the GPU decode path, which decodes later; needs ``keep_image=False``).
            Errors in the pixel data then show only when the image is decoded.

    Returns:
        The input columns except ``image_bytes``/``annotation`` (consumed), plus ``image``
        uint8 (N, R, R, 3), ``height``/``width`` int32 (original size, 0 when unknown),
        ``target`` uint8 (N, R, R) 0/1 and ``has_target`` bool (when ``thickness`` is given),
        and ``error`` (None or ``"<code>: <detail>"``). Failed rows have zero arrays.
    """
    from directsam.data.decode import decode_image, read_image_header, resize_rgb

    if header_only and keep_image:
        raise ValueError("decode_rows: header_only needs keep_image=False (nothing is decoded)")
    n = len(batch[IMAGE_ID])
    images = np.zeros((n, resolution, resolution, 3), dtype=np.uint8) if keep_image else None
    targets = np.zeros((n, resolution, resolution), dtype=np.uint8) if thickness else None
    has_target = np.zeros(n, dtype=bool)
    heights = np.zeros(n, dtype=np.int32)
    widths = np.zeros(n, dtype=np.int32)
    errors = np.empty(n, dtype=object)
    for i in range(n):
        error = cell_text(_cell(batch, ERROR, i))
        if error:
            errors[i] = error
            continue
        name = str(_cell(batch, SOURCE_URI, i, "") or batch[IMAGE_ID][i])
        try:
            data = _cell(batch, IMAGE_BYTES, i)
            data = bytes(data) if isinstance(data, (bytes, bytearray, memoryview)) else b""
            if header_only:
                header = read_image_header(data, name)
                image_hw = (header.height, header.width)
            else:
                image = decode_image(data, name)
                image_hw = image.shape[:2]
            heights[i], widths[i] = image_hw
            if images is not None:
                images[i] = resize_rgb(image, resolution)
            if targets is not None:
                ann = _cell(batch, ANNOTATION, i)
                boundary = annotation_to_boundary(
                    bytes(ann) if isinstance(ann, (bytes, bytearray, memoryview)) else None,
                    cell_text(_cell(batch, ANNOTATION_KIND, i)) or "none",
                    image_hw,
                    resolution,
                    int(thickness),  # type: ignore[arg-type]
                    name,
                    cell_text(_cell(batch, LABEL_MODE, i)) or "single_channel",
                )
                if boundary is not None:
                    targets[i] = boundary
                    has_target[i] = True
        except InputError as err:
            errors[i] = str(err)
            if images is not None:
                images[i] = 0
            if targets is not None:
                targets[i] = 0
            has_target[i] = False
    out = {k: v for k, v in batch.items() if k not in (IMAGE_BYTES, ANNOTATION, ERROR)}
    if images is not None:
        out[IMAGE] = images
    if targets is not None:
        out[TARGET] = targets
        out[HAS_TARGET] = has_target
    out[HEIGHT], out[WIDTH], out[ERROR] = heights, widths, errors
    return out
