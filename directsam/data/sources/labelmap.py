"""The ``labelmap`` source: an image folder + a label-map folder, paired by relative path
without extension (``--labels``, or ``INPUT/images`` + ``INPUT/labels``).

Label maps decode per ``--mode`` (``directsam.data.decode.decode_label_map``). The input *is*
the split (``--split`` selects nothing here).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from directsam.data.sources import fs
from directsam.data.sources.listing import (
    ItemColumns,
    dataset_name,
    require_input,
    sorted_unique,
    stem,
)
from directsam.schema import ANNOTATION_MISSING

if TYPE_CHECKING:
    import pyarrow as pa

    from directsam.data.sources.spec import SourceSpec
    from directsam.data.sources.store import StoreOptions


def labelmap_paths(input: str, labels: str | None) -> tuple[str, str]:
    """(image dir, label dir): ``--labels``, or ``input/images`` + ``input/labels``."""
    if labels:
        return input, labels
    images, labs = fs.join(input, "images"), fs.join(input, "labels")
    if fs.is_dir(images) and fs.is_dir(labs):
        return images, labs
    raise ValueError(f"--labels is required: {input!r} has no images/ + labels/ sub-folders")


def list_labelmap(spec: SourceSpec, store: StoreOptions) -> pa.Table:
    """The lister of ``labelmap``: one row per image (``annotation_missing`` when its label is
    missing), sorted by id."""
    require_input(spec.input)
    image_dir, label_dir = labelmap_paths(spec.input, spec.labels)
    name = dataset_name(spec)
    out = ItemColumns()
    label_files = {stem(f.rel): f.uri for f in fs.list_files(label_dir, fs.IMAGE_EXTENSIONS)}
    for f in fs.list_files(image_dir, fs.IMAGE_EXTENSIONS):
        label = label_files.get(stem(f.rel))
        error = None
        if label is None:
            error = f"{ANNOTATION_MISSING}: {f.uri}: no label {stem(f.rel)}.* in {label_dir}"
        out.add(
            stem(f.rel),
            f.uri,
            name,
            "labelmap",
            annotation_uri=label or "",
            label_mode=spec.mode,
            error=error,
        )
    return sorted_unique(out.table())
