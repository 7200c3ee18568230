"""Column names, error codes and Arrow types shared by sources, labeling, training and evaluation.

Every per-row contract in the platform names its columns through these constants so that the
labeling writer, the merged-label reader and the evaluation cache agree on one spelling.
"""

from __future__ import annotations

SCHEMA_VERSION = 1

# --- source rows (output of directsam.data.sources, input of every Ray Data pass) ------------
IMAGE_ID = "image_id"  # str, unique within its dataset
SOURCE_URI = "source_uri"  # str, where the image came from (path, s3:// URI, tar member)
DATASET = "dataset"  # str, registry name or user-given name
IMAGE_BYTES = "image_bytes"  # binary, the compressed image exactly as stored
ANNOTATION = "annotation"  # binary or null: the raw annotation (JSON bytes, PNG bytes, ...)
ANNOTATION_KIND = "annotation_kind"  # str: sa1b | coco | labelmap | none | shard
LABEL_MODE = "label_mode"  # str: how a label-map annotation is read (single_channel, ...)
ERROR = "error"  # str or null: "<code>: <detail>"

# --- labeled shards (contract in DESIGN.md) ---------------------------------------------------
HEIGHT = "height"
WIDTH = "width"
RESOLUTION = "resolution"
PSEUDO_BOUNDARY = "pseudo_boundary"
HUMAN_BOUNDARY = "human_boundary"
CHECKPOINT = "checkpoint"
CHECKPOINT_SHA = "checkpoint_sha"
THRESHOLD = "threshold"
THICKNESS = "thickness"
SCHEMA_VERSION_COL = "schema_version"

# --- error codes (the `error` column is "<code>: <detail>") -----------------------------------
READ_FAILED = "read_failed"
IMAGE_DECODE = "image_decode"
IMAGE_TOO_LARGE = "image_too_large"
ANNOTATION_MISSING = "annotation_missing"
ANNOTATION_INVALID = "annotation_invalid"
RLE_SIZE_MISMATCH = "rle_size_mismatch"
LABEL_MAP_SIZE_MISMATCH = "label_map_size_mismatch"
MODEL_FAILED = "model_failed"

ERROR_CODES = (
    READ_FAILED,
    IMAGE_DECODE,
    IMAGE_TOO_LARGE,
    ANNOTATION_MISSING,
    ANNOTATION_INVALID,
    RLE_SIZE_MISMATCH,
    LABEL_MAP_SIZE_MISMATCH,
    MODEL_FAILED,
)


class InputError(ValueError):
    """A problem with one input row (image or annotation), carrying a contract error code.

    ``str(err)`` is the value written to the ``error`` column: ``"<code>: <detail>"``. The
    detail names the file (or image id) and the problem, so a user can find the bad input.
    """

    def __init__(self, code: str, detail: str):
        if code not in ERROR_CODES:
            raise ValueError(f"unknown error code {code!r}; expected one of {ERROR_CODES}")
        self.code = code
        self.detail = detail
        super().__init__(f"{code}: {detail}")


def rle_arrow_type():
    """Arrow type of an RLE cell: struct {size: list<int32> [h, w], counts: string}."""
    import pyarrow as pa

    return pa.struct([("size", pa.list_(pa.int32())), ("counts", pa.string())])
