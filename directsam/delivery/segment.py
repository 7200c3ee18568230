"""``directsam segment``: images -> one SA-1B-style JSON per image (Ray Data, or one image).

Layout of ``--output``: ``<image_id>.json`` per image (nested ids keep their folders), the
image itself beside it with ``--copy-images`` (then the folder is an SA-1B folder that our
``sa1b`` source and any SA-1B reader accept), ``errors.jsonl`` for images that failed and
``_SUCCESS.json`` with counts and settings, written last.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from directsam.atomic import write_atomic
from directsam.delivery.sa1b_json import write_sa1b

if TYPE_CHECKING:
    from directsam.data.sources.spec import SourceSpec

SUCCESS_FILE = "_SUCCESS.json"
ERRORS_FILE = "errors.jsonl"


def segment_image(
    image: str | Path,
    output: str | Path,
    checkpoint: str,
    threshold: float | None = None,
    resolution: int | None = None,
    max_tokens: int | None = None,
    min_area: int | None = None,
    device: str = "auto",
    dtype: str = "auto",
    copy_image: bool = False,
) -> Path:
    """One-image mode (no Ray): ``image`` -> ``<output>/<stem>.json``; returns its path.

    Raises:
        InputError: the file cannot be read or decoded.
    """
    from directsam.delivery.stage import TokenizeStage
    from directsam.schema import READ_FAILED, InputError

    path = Path(image)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InputError(READ_FAILED, f"{path}: {err.strerror or err}") from None
    stage = TokenizeStage(
        checkpoint, threshold, resolution, max_tokens, min_area, device, dtype, keep_bytes=True
    )
    batch = {"image_id": [path.stem], "source_uri": [str(path)], "image_bytes": [data]}
    out = stage(batch)
    if out["error"][0]:
        raise InputError(*str(out["error"][0]).split(": ", 1))
    return write_sa1b(output, out["sa1b_json"][0], data if copy_image else None)


def _write_batch(
    batch: dict[str, Any], output: Path, copy_images: bool, errors_fh: Any
) -> tuple[int, int, int]:
    """Write one output batch on the driver; returns (images ok, failed, tokens)."""
    from directsam.delivery.stage import cell_str

    ok = failed = tokens = 0
    for i in range(len(batch["image_id"])):
        err = cell_str(batch["error"][i])  # None may come back as NaN through Arrow
        if err:
            failed += 1
            row = {"image_id": str(batch["image_id"][i]), "error": str(err)}
            if "source_uri" in batch:
                row["source_uri"] = str(batch["source_uri"][i])
            errors_fh.write(json.dumps(row) + "\n")
            continue
        data = batch["image_bytes"][i] if copy_images else None
        write_sa1b(output, batch["sa1b_json"][i], data)
        ok += 1
        tokens += int(batch["num_tokens"][i])
    return ok, failed, tokens


def run_segment(
    spec: SourceSpec,
    output: str | Path,
    checkpoint: str,
    *,
    threshold: float | None = None,
    resolution: int | None = None,
    max_tokens: int | None = None,
    min_area: int | None = None,
    device: str = "auto",
    dtype: str = "auto",
    batch_size: int = 4,
    actors: int = 1,
    num_gpus: float | None = None,
    copy_images: bool = False,
    log: Any = print,
) -> dict[str, Any]:
    """Segment every image of a source with a Ray Data pipeline; returns the summary.

    Ray must be initialised. Reading runs as Ray tasks (bytes stay compressed), the model in a
    fixed pool of ``actors`` :class:`~directsam.delivery.stage.TokenizeStage` actors, and the
    driver writes the (small) JSON files, so ``--output`` need not be shared by the nodes.

    Args:
        spec: the images (:func:`directsam.data.sources.read_source`).
        output: output folder (local).
        num_gpus: GPUs per actor (default 1 when the cluster has GPUs and ``device`` is not
            ``cpu``, else none).
        Others: see :class:`~directsam.delivery.stage.TokenizeStage`.
    """
    import ray
    import ray.data

    from directsam.data.sources import read_source
    from directsam.delivery.stage import TokenizeStage

    out_dir = Path(output)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / SUCCESS_FILE).unlink(missing_ok=True)
    ctx = ray.data.DataContext.get_current()
    ctx.max_errored_blocks = 0  # failures are row values, never dropped blocks
    if num_gpus is None:
        has_gpu = ray.cluster_resources().get("GPU", 0) >= 1
        num_gpus = 1.0 if has_gpu and device != "cpu" else 0.0
    ds = read_source(spec)
    resources = {"num_gpus": num_gpus} if num_gpus else {"num_cpus": 1}
    ds = ds.map_batches(
        TokenizeStage,
        fn_constructor_kwargs={
            "checkpoint": checkpoint,
            "threshold": threshold,
            "resolution": resolution,
            "max_tokens": max_tokens,
            "min_area": min_area,
            "device": device,
            "dtype": dtype,
            "keep_bytes": copy_images,
        },
        batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(size=actors),  # Ray: fixed model-actor pool
        **resources,
    )
    start = time.perf_counter()
    ok = failed = tokens = 0
    with open(out_dir / ERRORS_FILE, "w") as errors_fh:
        for batch in ds.iter_batches(batch_size=batch_size, batch_format="numpy"):
            a, b, c = _write_batch(batch, out_dir, copy_images, errors_fh)
            ok, failed, tokens = ok + a, failed + b, tokens + c
    elapsed = time.perf_counter() - start
    summary = {
        "source": spec.type,
        "input": spec.input,
        "checkpoint": checkpoint,
        "num_images": ok + failed,
        "num_ok": ok,
        "num_failed": failed,
        "num_tokens": tokens,
        "seconds": round(elapsed, 3),
        "images_per_s": round((ok + failed) / elapsed, 3) if elapsed > 0 else None,
        "settings": {
            "threshold": threshold,
            "resolution": resolution,
            "max_tokens": max_tokens,
            "min_area": min_area,
            "copy_images": copy_images,
        },
    }
    write_atomic(out_dir / SUCCESS_FILE, (json.dumps(summary, indent=2) + "\n").encode())
    log(
        f"segment: {ok} images written, {failed} failed, {tokens} tokens "
        f"({summary['images_per_s']} img/s) -> {out_dir}"
    )
    return summary
