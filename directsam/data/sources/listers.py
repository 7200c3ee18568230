"""The one dispatch on the source type: :data:`LISTERS` and :func:`plan_source`.

One module per source type exposes its lister (as segment-anything's ``sam_model_registry``
maps each model size to its builder); a lister takes the :class:`SourceSpec` and the job's
store options and returns the driver's plan: a :class:`TarPlan` (SA-1B tars, split and subset
applied at tar granularity) or the listing table of its images, sorted by id and split as that
source splits. :func:`plan_source` applies the ``num_samples``/``seed`` subset to a table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, TypeAlias

from directsam.data.sources import coco, fs, images, labelmap, sa1b
from directsam.data.sources.listing import dataset_name, select_rows
from directsam.data.sources.plan import ListedPlan, TarPlan
from directsam.data.sources.shards import source as shards
from directsam.data.sources.spec import SourceSpec, SourceType
from directsam.data.sources.store import StoreOptions, resolve_options

if TYPE_CHECKING:
    import pyarrow as pa

Lister: TypeAlias = Callable[[SourceSpec, StoreOptions], "TarPlan | pa.Table"]

LISTERS: dict[SourceType, Lister] = {
    "sa1b": sa1b.list_sa1b,
    "coco": coco.list_coco,
    "labelmap": labelmap.list_labelmap,
    "images": images.list_images,
    "shards": shards.list_shards,
}


def plan_source(spec: SourceSpec, store: StoreOptions | None = None) -> TarPlan | ListedPlan:
    """Plan ``spec`` on the driver (tars vs listed sources: ``directsam.data.sources.plan``).

    Args:
        spec: what to read. URIs may carry ``?endpoint_override=host:9000&scheme=http``.
        store: S3 settings from the config / flags (the URIs' queries and the environment fill
            what is unset). The result becomes this process's (:func:`fs.set_store`).

    Raises:
        ValueError: unknown type/split/mode, missing input, unusable annotation JSON (each
            message names its flag).
    """
    spec.check()
    uris = tuple(u for u in (spec.input, spec.annotations, spec.labels) if u)
    opts, clean = resolve_options(store, uris)
    fs.set_store(opts)
    spec = replace(
        spec,
        input=clean[0],
        annotations=clean[1] if spec.annotations else None,
        labels=clean[-1] if spec.labels else None,
    )
    listed = LISTERS[spec.type](spec, opts)  # type: ignore[index]  # check(): type is set
    if isinstance(listed, TarPlan):
        return listed
    # Shards keep their rows' dataset name unless one is given; the rest use dataset_name.
    name = listed["dataset"][0].as_py() if listed.num_rows else dataset_name(spec)
    return ListedPlan(name, select_rows(listed, spec.num_samples, spec.seed), opts)
