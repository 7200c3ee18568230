"""The driver's plan of a source: tar objects (SA-1B shards) or an Arrow table of listed images.

* :class:`TarPlan` (SA-1B tars): the tars' names, sizes and versions from one LIST per prefix
  page; no tar is opened on the driver. Work, output and resume are per tar
  (:meth:`TarPlan.units`), each tar streamed once by a Ray task.
* :class:`ListedPlan` (folders, COCO JSON, label maps, image folders, our shards): one Arrow
  table row per image (:func:`directsam.data.sources.listing.item_schema`), sorted by id.

Splits and subsets. Listed sources: ``--split val`` is the last 1% of images in sorted-id
order, ``--num-samples N`` the first N ids (``--seed``: a seeded random subset), as in
DESIGN.md. Tar sources keep the same shape at tar granularity, so that no image has to be
listed on the driver and a split reads only its own tars: ``val`` is the last ``ceil(1%)`` of
the tars in sorted name order (SA-1B: 10 of ~1,000 tars, ~110k images; its ids increase with
the tar number, so this is the last 1% of ids up to the tar boundary), ``--num-samples N`` is
the first N images in tar order (sorted tar names, members in stored order), and ``--seed``
puts the tars in a seeded random order first. docs/LABELING.md explains the choice.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from directsam.data.sources import fs
from directsam.data.sources.listing import (
    SOURCE_TYPES,
    SPLITS,
    ItemColumns,
    default_dataset_name,
    list_coco,
    list_images,
    list_labelmap,
    list_sa1b_folder,
    sa1b_layout,
    select_rows,
    sorted_unique,
    split_cut,
)
from directsam.data.sources.objects import ObjectInfo
from directsam.data.sources.store import StoreOptions, resolve_options
from directsam.data.sources.tarstream import TarUnit, tar_stem

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass
class TarPlan:
    """SA-1B tars to stream, in reading order (after the split and subset).

    Attributes:
        dataset: dataset name.
        tars: the selected tars (name, size, version).
        store: how to reach them (picklable; travels to the read tasks).
        num_samples: read only the first N images in this order (one sequential unit).
        selection: the split/subset settings, recorded in the fingerprint.
    """

    kind: ClassVar[str] = "tars"
    dataset: str
    tars: tuple[ObjectInfo, ...]
    store: StoreOptions
    num_samples: int | None = None
    selection: dict[str, Any] = field(default_factory=dict)

    def units(self) -> list[TarUnit]:
        """One unit per tar, or one ``head`` unit reading the tars in order up to N images."""
        if self.num_samples is not None:
            return [TarUnit("head", self.tars, limit=self.num_samples)] if self.tars else []
        return [TarUnit(tar_stem(t.uri), (t,)) for t in self.tars]

    def fingerprint(self) -> str:
        """sha256 of the tars (name, size, version) and the selection: what the plan reads."""
        digest = hashlib.sha256(repr(sorted(self.selection.items())).encode())
        for t in self.tars:
            digest.update(f"{t.uri}\t{t.size}\t{t.version}\n".encode())
        return digest.hexdigest()

    def describe(self) -> list[dict[str, Any]]:
        return [{"uri": t.uri, "size": t.size, "version": t.version} for t in self.tars]


@dataclass
class ListedPlan:
    """Listed images: one Arrow row per image, sorted by ``image_id`` (after split/subset)."""

    kind: ClassVar[str] = "listed"
    dataset: str
    items: pa.Table
    store: StoreOptions

    def image_ids(self) -> list[str]:
        return self.items["image_id"].to_pylist()


def _check_args(source: str, split: str) -> None:
    if source not in SOURCE_TYPES:
        raise ValueError(f"--source must be one of {', '.join(SOURCE_TYPES)}, got {source!r}")
    if split not in SPLITS:
        raise ValueError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")


def _tar_plan(
    tars: list[ObjectInfo],
    dataset: str,
    store: StoreOptions,
    split: str,
    num_samples: int | None,
    seed: int | None,
) -> TarPlan:
    tars = sorted(tars, key=lambda t: t.uri)
    start, stop = split_cut(len(tars), split)
    if split == "train" and start == stop:
        raise ValueError(
            f"--split train: the input has {len(tars)} tar(s); tar sources split by tar (the "
            "last ceil(1%) of tars is val), so a train split needs at least 2"
        )
    chosen = tars[start:stop]
    if seed is not None and num_samples is not None:
        random.Random(seed).shuffle(chosen)
    selection = {"split": split, "num_samples": num_samples, "seed": seed}
    return TarPlan(dataset, tuple(chosen), store, num_samples, selection)


def plan_source(
    source: str,
    input: str,
    *,
    dataset: str | None = None,
    num_samples: int | None = None,
    seed: int | None = None,
    split: str = "all",
    mode: str = "single_channel",
    annotations: str | None = None,
    labels: str | None = None,
    store: StoreOptions | None = None,
) -> TarPlan | ListedPlan:
    """Plan a source on the driver (see the module docstring for tars vs listed sources).

    Args:
        source: ``sa1b`` | ``coco`` | ``labelmap`` | ``images`` | ``shards``.
        input: local path or URI (``s3://bucket/prefix?endpoint_override=host:9000&scheme=http``
            sets the endpoint for this job); layouts in ``docs/LABELING.md``.
        dataset: dataset name (default: the input folder's name; shards keep theirs).
        num_samples, seed, split: subsets and splits (module docstring).
        mode: label-map mode (``single_channel`` | ``force_binary`` | ``rgb``).
        annotations: COCO JSON (default: the single ``*.json`` in ``input``).
        labels: label-map folder (default: ``input/labels`` beside ``input/images``).
        store: S3 settings from the config / flags (the URIs' queries and the environment fill
            what is unset). The result becomes this process's (:func:`fs.set_store`).

    Raises:
        ValueError: unknown source/split, missing input, unusable annotation JSON.
    """
    _check_args(source, split)
    uris = tuple(u for u in (input, annotations, labels) if u)
    opts, clean = resolve_options(store, uris)
    fs.set_store(opts)
    input = clean[0]
    annotations = clean[1] if annotations else None
    labels = clean[-1] if labels else None
    name = dataset or default_dataset_name(source, input)
    out = ItemColumns()
    if source == "sa1b":
        try:
            kind, parts = sa1b_layout(input, opts)
        except FileNotFoundError as err:
            raise ValueError(str(err)) from None
        if kind == "tars":
            return _tar_plan(parts, name, opts, split, num_samples, seed)
        for folder in parts:
            list_sa1b_folder(folder, name, out)
        table = out.table()
    elif source == "shards":
        from directsam.data.sources.shards.source import list_shards

        table = list_shards(input, dataset)
        name = table["dataset"][0].as_py() if table.num_rows else name
    else:
        if not (fs.is_dir(input) or fs.is_file(input)):
            raise ValueError(f"--input {input!r}: no such file or directory")
        if source == "coco":
            list_coco(input, annotations, name, out)
        elif source == "labelmap":
            list_labelmap(input, labels, mode, name, out)
        else:
            list_images(input, name, out)
        table = out.table()
    table = sorted_unique(table)
    if source in ("sa1b", "shards"):
        start, stop = split_cut(table.num_rows, split)
        table = table.slice(start, stop - start)
    return ListedPlan(name, select_rows(table, num_samples, seed), opts)


def tar_items(plan: TarPlan) -> pa.Table:
    """A listing table of a tar plan's images, by streaming each tar once on this process.

    For small inputs and tests (``list_source``): jobs never list tars, they stream them in
    Ray tasks. Member byte ranges are kept, so ``read_items`` re-reads single members.
    """
    from directsam.data.sources.tarstream import OFFSET_COLUMNS, read_unit

    out = ItemColumns()
    for unit in plan.units():
        for rows in read_unit(unit, plan.dataset, plan.store, 1 << 30, with_data=False):
            for r in rows:
                extra = {k: r[k] for k in OFFSET_COLUMNS}
                kind = "sa1b"
                ann = ""
                if r["annotation_offset"] >= 0:
                    ann = r["source_uri"].rsplit(".", 1)[0] + ".json"
                out.add(
                    r["image_id"], r["source_uri"], r["dataset"], kind,
                    annotation_uri=ann, error=r["error"], **extra,
                )  # fmt: skip
    return sorted_unique(out.table())


def count_images(plan: TarPlan, budget_bytes: int = 64 << 20) -> tuple[int, bool]:
    """(number of images, exact?) of a tar plan, reading at most ``budget_bytes`` of its tars.

    Tars are streamed in order (member headers only, data skipped in the same pass) until the
    budget is spent. When that covers every tar the count is exact; otherwise it is the images
    per byte of what was read times the plan's total bytes (SA-1B tars are alike, ~11,000
    images per ~10 GB). ``num_samples`` caps either.
    """
    from directsam.data.sources.objects import open_object
    from directsam.data.sources.tarformat import TarDamage, iter_members, wds_key

    total = sum(t.size for t in plan.tars)
    images = read = 0
    exact = True
    for tar in plan.tars:
        keys: set[str] = set()
        try:
            with open_object(tar, 0, plan.store) as stream:
                for m in iter_members(stream, 0, lambda name: False):
                    key, ext = wds_key(m.name)
                    if ext in ("jpg", "jpeg"):
                        keys.add(key)
                    if read + m.end > budget_bytes:
                        read += m.end
                        exact = False
                        break
                else:
                    read += tar.size
        except (TarDamage, OSError):
            read += tar.size  # a damaged tar counts what could be read
        images += len(keys)
        if not exact:
            break
    if not exact and read:
        images = round(images * total / read)
    if plan.num_samples is not None:
        return min(images, plan.num_samples), exact or images >= plan.num_samples
    return images, exact
