"""Core data primitives (no Ray): decode, RLE, annotation parsing, boundary targets, samples.

Modules, one noun each:

* ``decode``   - image bytes -> RGB uint8 HxWx3, label-map bytes -> int32 HxW, square resizes.
* ``rle``      - bool masks <-> COCO RLE, polygons -> RLE, validated run lengths.
* ``sa1b``     - SA-1B JSON -> (image info, RLEs); ``sa_<n>`` ids.
* ``coco``     - COCO-JSON instances -> per-image records -> RLEs.
* ``boundary`` - masks / label maps -> boundary targets (DESIGN.md band definition).
* ``augment``  - photometric training augmentation on float tensors (imports torch).
* ``sample``   - synthetic SA-1B / label-map / COCO datasets and ``directsam make-sample``.
* ``sources``  - Ray Data readers built on the above.

The re-exports below pull in numpy only (heavier libraries load inside the functions).
"""

from __future__ import annotations

from directsam.data.boundary import (
    band_kernel,
    border_band,
    label_map_to_boundary,
    masks_to_boundary,
)
from directsam.data.coco import coco_record, parse_coco_json, parse_coco_record
from directsam.data.decode import (
    decode_image,
    decode_label_map,
    resize_label_map,
    resize_rgb,
)
from directsam.data.rle import (
    mask_to_rle,
    rle_area,
    rle_bbox_xywh,
    rle_to_mask,
    rle_to_runs,
    segmentation_to_rle,
)
from directsam.data.sa1b import parse_sa1b_annotation, sa1b_image_id

__all__ = [
    "band_kernel",
    "border_band",
    "coco_record",
    "decode_image",
    "decode_label_map",
    "label_map_to_boundary",
    "mask_to_rle",
    "masks_to_boundary",
    "parse_coco_json",
    "parse_coco_record",
    "parse_sa1b_annotation",
    "resize_label_map",
    "resize_rgb",
    "rle_area",
    "rle_bbox_xywh",
    "rle_to_mask",
    "rle_to_runs",
    "segmentation_to_rle",
    "sa1b_image_id",
]
