"""Cached probabilities + GT -> one visual panel per image (PNG), the metric made visible.

Panel: input | predicted boundary (probs >= threshold) | effective contour with its token count
| GT matched (green) and missing (red) within the tolerance | GT boundary. The intermediate maps
come from the metric itself (``directsam.metrics.contour_recall_maps``), so the panel's token
count and matched fraction are the image's metric values.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from directsam.evaluation import cache as cache_mod


def panel_maps(
    gt: npt.NDArray[np.bool_], probs_u8: npt.NDArray[np.uint8], threshold: float, tolerance: int
) -> dict[str, Any]:
    """The maps a panel shows (all bool RxR) plus ``num_tokens`` and ``recall``.

    Keys: ``pred`` (probs >= threshold), ``contour`` (effective contour of the prediction with
    the border band on), ``matched`` / ``missing`` (GT outside the band that the dilated contour
    covers / misses), ``gt``, ``num_tokens`` (int), ``recall`` (float, NaN when GT is empty).
    """
    from directsam.metrics import contour_recall_maps

    pred = cache_mod.quantized_to_boundary(probs_u8, threshold)
    maps = contour_recall_maps(gt, pred, tolerance)
    return {
        "pred": pred,
        "contour": maps.contour,
        "matched": maps.gt_inner & maps.covered,
        "missing": maps.gt_inner & ~maps.covered,
        "gt": gt.astype(bool),
        "num_tokens": maps.num_tokens,
        "recall": maps.recall,
    }


def render_panel(image: npt.NDArray[np.uint8] | None, maps: dict[str, Any], title: str = "") -> Any:
    """A 1x5 matplotlib ``Figure`` (Agg, no pyplot state) of :func:`panel_maps` output.

    Args:
        image: uint8 RxRx3 input at the evaluation resolution, or None (drawn grey).
    """
    from matplotlib.figure import Figure

    gt = maps["gt"]
    if image is None:
        image = np.full((*gt.shape, 3), 128, dtype=np.uint8)
    overlay = np.zeros((*gt.shape, 3), dtype=np.uint8)
    overlay[maps["matched"]] = (0, 200, 0)
    overlay[maps["missing"]] = (230, 0, 0)
    recall = maps["recall"]
    views = [
        (image, "input"),
        (maps["pred"], "predicted boundary"),
        (maps["contour"], f"effective contour ({maps['num_tokens']} tokens)"),
        (overlay, f"GT matched / missing (recall {recall:.3f})"),
        (gt, "GT boundary"),
    ]
    fig = Figure(figsize=(15, 3.4), dpi=100)
    for i, (array, label) in enumerate(views):
        ax = fig.add_subplot(1, 5, i + 1)
        ax.imshow(array, cmap="gray" if array.ndim == 2 else None, interpolation="nearest")
        ax.set_title(label, fontsize=8)
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def _load_image(source_uri: str, resolution: int) -> npt.NDArray[np.uint8] | None:
    """The input image at R x R, re-read from its source (None when it cannot be read)."""
    from directsam.data.decode import decode_image, resize_rgb
    from directsam.data.sources import read_uri
    from directsam.schema import InputError

    try:
        return resize_rgb(decode_image(read_uri(source_uri), name=source_uri), resolution)
    except (OSError, InputError, ValueError):
        return None


def write_panels(
    cache_location: str, out_dir: str | Path, threshold: float, tolerance: int, num_images: int
) -> list[Path]:
    """Panels of the first ``num_images`` images (sorted ids) as ``<id>.png`` files.

    Images among them without GT or with errors get no panel. Inputs are re-read from
    ``source_uri`` (no model pass). Returns the written paths.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    first = set(cache_mod.cache_image_ids(cache_location)[:num_images])
    items = sorted(
        (i for i in cache_mod.iter_cache(cache_location, image_ids=first)
         if i.gt is not None and i.probs_u8 is not None),
        key=lambda i: i.image_id,
    )  # fmt: skip
    paths = []
    for item in items:
        assert item.gt is not None and item.probs_u8 is not None
        maps = panel_maps(item.gt, item.probs_u8, threshold, tolerance)
        image = _load_image(item.source_uri, item.gt.shape[0])
        fig = render_panel(
            image, maps, f"{item.image_id}  threshold {threshold:g}  tolerance {tolerance}"
        )
        path = out / (re.sub(r"[^A-Za-z0-9_.-]+", "_", item.image_id) + ".png")
        fig.savefig(path)
        paths.append(path)
    return paths
