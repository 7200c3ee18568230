"""The ``sa1b`` source: SA-1B tar shards (planned as tars) or extracted folders (listed).

Layouts: a ``.tar`` file, a folder or prefix of tars (one LIST per 1,000 objects), one
extracted folder (``sa_<n>.jpg`` + ``sa_<n>.json``) or a root holding one folder per extracted
tar. Tars are never listed image by image: their plan is the tar objects
(:func:`directsam.data.sources.plan.tar_plan`), streamed whole by Ray read tasks. SA-1B has no
official split: ``val`` is the last 1% of sorted ids (tars: the last ``ceil(1%)`` of the tars).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from directsam.data.sources import fs
from directsam.data.sources.listing import (
    ItemColumns,
    dataset_name,
    sorted_unique,
    split_rows,
    stem,
)
from directsam.data.sources.objects import list_objects, stat_object
from directsam.data.sources.plan import TarPlan, tar_plan
from directsam.schema import ANNOTATION_MISSING

if TYPE_CHECKING:
    import pyarrow as pa

    from directsam.data.sources.spec import SourceSpec
    from directsam.data.sources.store import StoreOptions


def list_sa1b_folder(folder: str, dataset: str, out: ItemColumns) -> None:
    """One extracted SA-1B folder (``sa_<n>.jpg`` + ``sa_<n>.json``) into ``out``."""
    from directsam.data.sa1b import sa1b_image_id
    from directsam.schema import InputError

    files = fs.list_files(folder, (".jpg", ".jpeg", ".json"), recursive=False)
    jsons = {stem(f.rel): f for f in files if f.rel.lower().endswith(".json")}
    for f in files:
        if f.rel.lower().endswith(".json"):
            continue
        ann = jsons.get(stem(f.rel))
        err = None if ann else f"{ANNOTATION_MISSING}: {f.uri}: no {stem(f.rel)}.json beside it"
        try:
            image_id = sa1b_image_id(f.rel)
        except InputError as bad:
            image_id, err = stem(f.rel), str(bad)
        out.add(image_id, f.uri, dataset, "sa1b", annotation_uri=ann.uri if ann else "", error=err)


def sa1b_layout(input: str, store: StoreOptions) -> tuple[str, list[Any]]:
    """Which SA-1B layout ``input`` is: ``("tars", [ObjectInfo])`` or ``("folders", [uris])``.

    Raises:
        FileNotFoundError: none of the layouts in the module docstring.
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


def list_sa1b(spec: SourceSpec, store: StoreOptions) -> TarPlan | pa.Table:
    """The lister of ``sa1b``: a :class:`TarPlan` (split and subset applied, at tar
    granularity), or the listing table of the extracted folders (sorted, split)."""
    try:
        kind, parts = sa1b_layout(spec.input, store)
    except FileNotFoundError as err:
        raise ValueError(str(err)) from None
    name = dataset_name(spec)
    if kind == "tars":
        return tar_plan(parts, name, store, spec.split, spec.num_samples, spec.seed)
    out = ItemColumns()
    for folder in parts:
        list_sa1b_folder(folder, name, out)
    return split_rows(sorted_unique(out.table()), spec.split)
