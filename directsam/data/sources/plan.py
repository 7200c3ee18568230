"""The driver's plan of a source: tar objects (SA-1B shards) or an Arrow table of listed images.

``directsam.data.sources.listers.plan_source`` makes one from a ``SourceSpec``.

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

from directsam.data.sources.listing import ItemColumns, sorted_unique, split_cut
from directsam.data.sources.objects import ObjectInfo
from directsam.data.sources.store import StoreOptions
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


def tar_plan(
    tars: list[ObjectInfo],
    dataset: str,
    store: StoreOptions,
    split: str,
    num_samples: int | None,
    seed: int | None,
) -> TarPlan:
    """The tars of ``split`` in reading order, with the subset (module docstring)."""
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
