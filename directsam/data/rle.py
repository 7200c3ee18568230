"""COCO run-length encoding: bool masks <-> RLE dicts, polygons -> RLE, validated run lengths.

An RLE is ``{"size": [height, width], "counts": str}`` with COCO *compressed* counts (as in
SA-1B and the shard contract). pycocotools does the encoding and decoding; this module adds
the validation it lacks: pycocotools' C decoder trusts the counts, so counts that sum to less
than ``h * w`` leave uninitialised memory in the mask and counts that sum to more overflow the
buffer. Every RLE therefore goes through :func:`rle_to_runs` (a vectorised numpy parser of the
compressed format) before it reaches pycocotools.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from directsam.schema import ANNOTATION_INVALID, RLE_SIZE_MISMATCH, InputError

RLE = dict[str, Any]

# Compressed counts use 6-bit characters offset by 48 ('0'..'o'); 7 characters carry 35 bits,
# more than any run in an image below 2^34 pixels, so longer groups are corrupt input.
_MAX_GROUP_CHARS = 7


def _label(name: str) -> str:
    return name or "<rle>"


def _invalid(name: str, why: str) -> InputError:
    return InputError(ANNOTATION_INVALID, f"{_label(name)}: {why}")


def _rle_size(rle: Any, name: str) -> tuple[int, int]:
    """Validated ``(h, w)`` of an RLE dict; raises ANNOTATION_INVALID on any malformation."""
    if not isinstance(rle, dict):
        raise _invalid(
            name, f"RLE must be a dict with 'size' and 'counts', got {type(rle).__name__}"
        )
    if "size" not in rle or "counts" not in rle:
        missing = [k for k in ("size", "counts") if k not in rle]
        raise _invalid(name, f"RLE is missing key(s) {missing}")
    size = rle["size"]
    if (
        not isinstance(size, (list, tuple, np.ndarray))
        or len(size) != 2
        or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in size)
        or min(int(v) for v in size) < 0
    ):
        raise _invalid(name, f"RLE size must be [height, width] of non-negative ints, got {size!r}")
    return int(size[0]), int(size[1])


def _segmented_cumsum(x: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """Cumulative sum of ``x`` restarting wherever the (non-decreasing) segment id changes."""
    if x.size == 0:
        return x
    cs = np.cumsum(x)
    first = np.flatnonzero(np.concatenate(([True], seg[1:] != seg[:-1])))
    offsets = cs[first] - x[first]
    return cs - np.repeat(offsets, np.diff(np.concatenate((first, [x.size]))))


def _decode_compressed(
    strings: Sequence[bytes], names: Sequence[str]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Decode COCO compressed counts (pycocotools ``rleFrString``) of many RLEs in one pass.

    Each run is a little-endian group of 6-bit characters offset by 48 (bit 0x20 = "more
    chunks follow", 5 data bits, bit 0x10 of the last chunk = sign); from the fourth run of a
    string on, values are deltas to the run two places before. Strings are joined and decoded
    together (a valid string ends with a finished group, so groups never straddle strings).

    Returns:
        (runs, lengths): all run lengths concatenated, and the number of runs per string.
        Signs and sums are checked by the caller.
    """
    lens = np.fromiter((len(c) for c in strings), dtype=np.int64, count=len(strings))
    stops = np.cumsum(lens)  # one past each string's last character

    def owner(pos: int) -> str:
        return names[int(np.searchsorted(stops, pos, "right"))]

    # uint8 arithmetic wraps characters below '0' to >= 208, so one max() checks both ends.
    b8 = np.frombuffer(b"".join(strings), dtype=np.uint8) - np.uint8(48)
    if b8.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(len(strings), dtype=np.int64)
    if b8.max() > 63:
        bad = int(np.argmax(b8 > 63))
        raise _invalid(owner(bad), "RLE counts string has characters outside the COCO alphabet")
    more = b8 >= 32  # bit 0x20: another chunk follows
    last = stops[lens > 0] - 1
    if more[last].any():
        pos = int(last[np.argmax(more[last])])
        raise _invalid(owner(pos), "RLE counts string is truncated (last run is unfinished)")
    ends = np.flatnonzero(~more)
    starts = np.concatenate(([0], ends[:-1] + 1))
    glen = ends - starts + 1
    if glen.max() > _MAX_GROUP_CHARS:
        pos = int(ends[np.argmax(glen > _MAX_GROUP_CHARS)])
        raise _invalid(owner(pos), "RLE counts string holds a run longer than any image")
    data = (b8 & 0x1F).astype(np.int64)
    if glen.max() == 1:
        vals = data
    else:
        shift = 5 * (np.arange(b8.size) - np.repeat(starts, glen))
        vals = np.add.reduceat(data << shift, starts)
    negative = (b8[ends] & 0x10) != 0
    vals[negative] -= np.left_shift(1, 5 * glen[negative])
    # Undo the delta coding within each string: runs[m] = x[m] + runs[m - 2] for m > 2,
    # i.e. cumulative sums over the odd positions and over the even positions from 2 on.
    seg = np.searchsorted(stops, ends, "right")
    lengths = np.bincount(seg, minlength=len(strings)).astype(np.int64)
    local = np.arange(vals.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    for sel in ((local & 1) == 1, ((local & 1) == 0) & (local >= 2)):
        vals[sel] = _segmented_cumsum(vals[sel], seg[sel])
    return vals, lengths


def _counts_bytes(counts: Any, name: str) -> bytes | None:
    """Compressed counts as bytes, or None for uncompressed (list) counts."""
    if isinstance(counts, str):
        try:
            return counts.encode("ascii")
        except UnicodeEncodeError:
            raise _invalid(name, "RLE counts string is not ASCII") from None
    if isinstance(counts, (bytes, bytearray)):
        return bytes(counts)
    if isinstance(counts, (list, tuple, np.ndarray)):
        return None
    raise _invalid(name, f"RLE counts must be a string or a list, got {type(counts).__name__}")


def _list_runs(counts: Any, name: str) -> npt.NDArray[np.int64]:
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in counts):
        raise _invalid(name, "uncompressed RLE counts must be a list of ints")
    return np.asarray(counts, dtype=np.int64).reshape(-1)


def _check_runs(
    runs: np.ndarray, lengths: np.ndarray, sizes: list[tuple[int, int]], names: Sequence[str]
) -> None:
    """Every run >= 0 and each RLE's runs sum to h * w (pycocotools' decoder trusts both)."""
    offsets = np.cumsum(lengths) - lengths
    if runs.size and runs.min() < 0:
        k = int(np.searchsorted(offsets + lengths, np.argmax(runs < 0), "right"))
        raise _invalid(names[k], "RLE counts contain a negative run length")
    totals = np.zeros(len(lengths), dtype=np.int64)
    nonempty = lengths > 0
    if runs.size:
        totals[nonempty] = np.add.reduceat(runs, offsets[nonempty])
    expected = np.array([h * w for h, w in sizes], dtype=np.int64)
    wrong = np.flatnonzero(totals != expected)
    if wrong.size:
        k = int(wrong[0])
        why = f"RLE counts cover {totals[k]} pixels but size {list(sizes[k])} has {expected[k]}"
        raise _invalid(names[k], why)


def rles_to_runs(
    rles: Sequence[RLE], names: Sequence[str]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Validated run lengths of many RLEs, decoded together (far cheaper than one by one).

    Args:
        rles: RLE dicts (compressed or uncompressed counts).
        names: one name per RLE, for error messages.

    Returns:
        (runs, lengths): the int64 concatenation of every RLE's runs (see :func:`rle_to_runs`)
        and the int64 (N,) number of runs of each.

    Raises:
        InputError(ANNOTATION_INVALID): the first malformed RLE, by its name.
    """
    sizes = [_rle_size(rle, nm) for rle, nm in zip(rles, names)]
    raw = [_counts_bytes(rle["counts"], nm) for rle, nm in zip(rles, names)]
    if all(r is not None for r in raw):
        runs, lengths = _decode_compressed(raw, names)  # type: ignore[arg-type]
    else:
        parts = [
            _decode_compressed([r], [nm])[0] if r is not None else _list_runs(rle["counts"], nm)
            for r, rle, nm in zip(raw, rles, names)
        ]
        lengths = np.array([len(p) for p in parts], dtype=np.int64)
        runs = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    _check_runs(runs, lengths, sizes, names)
    return runs, lengths


def rle_to_runs(rle: RLE, name: str = "") -> npt.NDArray[np.int64]:
    """Validated run lengths of an RLE (compressed str/bytes or uncompressed list counts).

    Args:
        rle: ``{"size": [h, w], "counts": str | bytes | list[int]}``.
        name: file or image id used in error messages.

    Returns:
        int64 (N,) run lengths over the column-major (Fortran) flattened mask, alternating
        0-runs and 1-runs starting with a 0-run (possibly empty); all >= 0, summing to h * w.

    Raises:
        InputError(ANNOTATION_INVALID): missing keys, wrong types, corrupt counts, or counts
        that do not cover exactly h * w pixels.
    """
    return rles_to_runs([rle], [_label(name)])[0]


def _check_size(h: int, w: int, expected_hw: tuple[int, int] | None, name: str) -> None:
    if expected_hw is not None and (h, w) != (int(expected_hw[0]), int(expected_hw[1])):
        raise InputError(
            RLE_SIZE_MISMATCH,
            f"{_label(name)}: RLE size {[h, w]} != image size {[int(v) for v in expected_hw]}",
        )


def _to_pycoco(rle: RLE, name: str) -> dict[str, Any]:
    """Validate and return the RLE in the form pycocotools accepts (compressed bytes counts)."""
    from pycocotools import mask as mask_utils

    h, w = _rle_size(rle, name)
    rle_to_runs(rle, name)
    counts = rle["counts"]
    if isinstance(counts, str):
        return {"size": [h, w], "counts": counts.encode("ascii")}
    if isinstance(counts, (bytes, bytearray)):
        return {"size": [h, w], "counts": bytes(counts)}
    # Uncompressed: let pycocotools compress it (it re-reads size from the dict).
    return mask_utils.frPyObjects({"size": [h, w], "counts": [int(v) for v in counts]}, h, w)


def _from_pycoco(rle: dict[str, Any]) -> RLE:
    counts = rle["counts"]
    return {
        "size": [int(rle["size"][0]), int(rle["size"][1])],
        "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts,
    }


def mask_to_rle(mask: npt.ArrayLike) -> RLE:
    """Encode a mask as COCO compressed RLE.

    Args:
        mask: bool (or 0/1 integer) HxW array.

    Returns:
        ``{"size": [h, w], "counts": str}``.
    """
    from pycocotools import mask as mask_utils

    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(f"mask must be 2-D HxW, got shape {arr.shape}")
    if arr.size == 0:
        # pycocotools cannot encode empty arrays; the empty run list encodes as "".
        return {"size": [int(arr.shape[0]), int(arr.shape[1])], "counts": ""}
    return _from_pycoco(mask_utils.encode(np.asfortranarray(arr != 0, dtype=np.uint8)))


def rle_to_mask(rle: RLE, expected_hw: tuple[int, int] | None = None, name: str = "") -> np.ndarray:
    """Decode a COCO RLE (compressed or uncompressed counts) to a bool HxW mask.

    Args:
        rle: ``{"size": [h, w], "counts": str | bytes | list[int]}``.
        expected_hw: the image's ``(H, W)``; when given the RLE must have that size.
        name: file or image id used in error messages.

    Raises:
        InputError(RLE_SIZE_MISMATCH): size differs from ``expected_hw``.
        InputError(ANNOTATION_INVALID): malformed RLE (see :func:`rle_to_runs`).
    """
    from pycocotools import mask as mask_utils

    h, w = _rle_size(rle, name)
    _check_size(h, w, expected_hw, name)
    if h * w == 0:
        rle_to_runs(rle, name)
        return np.zeros((h, w), dtype=bool)
    return mask_utils.decode(_to_pycoco(rle, name)).astype(bool)


def _polygons_to_rle(seg: list[Any], h: int, w: int, name: str) -> RLE:
    from pycocotools import mask as mask_utils

    polys: list[list[float]] = []
    for i, poly in enumerate(seg):
        if not isinstance(poly, (list, tuple)) or not all(
            isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
            for v in poly
        ):
            raise _invalid(name, f"polygon {i} must be a flat list of numbers [x0, y0, x1, ...]")
        if len(poly) % 2:
            raise _invalid(name, f"polygon {i} has an odd number of coordinates ({len(poly)})")
        coords = [float(v) for v in poly]
        if not np.isfinite(coords).all():
            raise _invalid(name, f"polygon {i} has non-finite coordinates")
        # Fewer than 3 points enclose nothing; pycocotools would even read a 4-number list as
        # a bbox, so degenerate polygons are dropped rather than passed on.
        if len(coords) >= 6:
            polys.append(coords)
    if not polys or h * w == 0:
        return mask_to_rle(np.zeros((h, w), dtype=bool))
    merged = mask_utils.merge(mask_utils.frPyObjects(polys, h, w))
    return _from_pycoco(merged)


def segmentation_to_rle(seg: Any, h: int, w: int, name: str = "") -> RLE:
    """Convert a COCO-JSON ``segmentation`` to compressed RLE at the image size.

    Args:
        seg: compressed RLE ``{"size", "counts": str}``, uncompressed RLE
            ``{"size", "counts": [int, ...]}`` (COCO crowd annotations), or polygons
            ``[[x0, y0, x1, y1, ...], ...]`` in pixel coordinates (rasterised by pycocotools;
            polygons with fewer than 3 points are skipped).
        h, w: image height and width.
        name: file or image id used in error messages.

    Returns:
        ``{"size": [h, w], "counts": str}`` (compressed).

    Raises:
        InputError(RLE_SIZE_MISMATCH): an RLE's size differs from ``(h, w)``.
        InputError(ANNOTATION_INVALID): anything malformed.
    """
    if isinstance(seg, dict):
        rh, rw = _rle_size(seg, name)
        _check_size(rh, rw, (h, w), name)
        return _from_pycoco(_to_pycoco(seg, name))
    if isinstance(seg, (list, tuple)):
        return _polygons_to_rle(list(seg), int(h), int(w), name)
    raise _invalid(
        name, f"segmentation must be an RLE dict or a list of polygons, got {type(seg).__name__}"
    )


def rle_area(rle: RLE, name: str = "") -> int:
    """Number of foreground pixels of an RLE."""
    runs = rle_to_runs(rle, name)
    return int(runs[1::2].sum())


def rle_bbox_xywh(rle: RLE, name: str = "") -> list[float]:
    """Tight bounding box ``[x, y, width, height]`` of an RLE (COCO convention, zeros if empty)."""
    from pycocotools import mask as mask_utils

    h, w = _rle_size(rle, name)
    if h * w == 0:
        rle_to_runs(rle, name)
        return [0.0, 0.0, 0.0, 0.0]
    return [float(v) for v in mask_utils.toBbox(_to_pycoco(rle, name))]


def masks_to_rles(masks: Sequence[npt.ArrayLike] | np.ndarray) -> list[RLE]:
    """Encode a stack of masks (N x H x W bool, or a sequence of HxW) as a list of RLEs."""
    return [mask_to_rle(m) for m in masks]
