"""Zhang-Suen thinning on the pixels that can still change: bool HxW -> bool HxW skeleton.

Bit-exact with `skimage.morphology.skeletonize` on 2-D images (the seed's metric calls it), and
several times faster on boundary maps. skimage rescans the whole image twice per iteration until
nothing changes; on a 1024 px boundary map that is ~40 iterations although after the first few
only a handful of pixels (slowly eroding spurs) still change. We run the first subiterations
densely on a bit-packed image (64 pixels per machine word, the decision table as a boolean
formula over the eight neighbour bit planes) and the rest only on pixels next to the last
removals.

Why this is exact. skimage's `_fast_skeletonize` alternates two *parallel* subiterations: every
foreground pixel looks up the 8-bit code of its 3x3 neighbourhood (image zero-padded) in a
decision table and is removed if the table says so for this subiteration; removals are applied
after the whole scan. It stops after an iteration (two subiterations) that removed nothing.
(1) A pixel's decision depends only on its neighbourhood and the subiteration parity, so a pixel
whose 8 neighbours did not change since it was last evaluated in a subiteration of the same
parity (two subiterations ago) keeps its previous answer, "keep". Evaluating only foreground
pixels within the 3x3 neighbourhood of the last two subiterations' removals therefore removes
exactly the same pixels. (2) When that set is empty the image is fixed under both parities, and
skimage stops in the same state (its state sequence is the same, and a state fixed under both
parities never changes again).
"""

from __future__ import annotations

import functools
import itertools
from collections import Counter

import numpy as np
import numpy.typing as npt

# Decision table of scikit-image's 2-D `skeletonize` (Zhang & Suen 1984 with scikit-image's own
# adjustments; scikit-image, BSD-3-Clause). Index = 8-bit neighbourhood code with bit weights
#   NW=1  N=2   NE=4
#   W=128  .    E=8
#   SW=64 S=32  SE=16
# value 1: removable in the first subiteration, 2: in the second, 3: in both, 0: never.
# tests/metrics/test_skeleton.py checks this table against skimage itself on random images.
_DECISIONS = (
    "0001001300311013000000002020303300000000300000000000000020003022"
    "0000000000000000000000000000000020000000200020003000000030003020"
    "0031001300000001000000000000000131000000000000002000000000000000"
    "2313001300000001000000000000000023010001000000003301000022002000"
)
_TABLE = np.frombuffer(_DECISIONS.encode("ascii"), dtype=np.uint8) - ord("0")
# uint8 0/1 "remove" tables per subiteration parity (first, second).
_REMOVE = (
    ((_TABLE == 1) | (_TABLE == 3)).astype(np.uint8),
    ((_TABLE == 2) | (_TABLE == 3)).astype(np.uint8),
)
# Below this many active pixels a Python loop beats numpy's per-call overhead.
_PYTHON_BELOW = 96

# The same tables as sums of products over the neighbours (bit k of the code = _NEIGHBOURS[k],
# "!" = background), for the bit-packed dense subiterations: a minimal sum of products of each
# table's "remove" entries (sympy SOPform). tests/metrics/test_skeleton.py checks that they
# give _REMOVE on all 256 codes.
_NEIGHBOURS = ("nw", "n", "ne", "e", "se", "s", "sw", "w")
_REMOVE_TERMS = (
    (
        "n !e !se !s w",
        "nw n ne e !s !sw",
        "nw n ne !se !s w",
        "nw n !e !se sw w",
        "nw !ne !e s sw w",
        "nw !ne !e !se sw w",
        "n e !se !s !sw !w",
        "!nw ne e !s !sw !w",
        "n ne !se !s !sw !w",
        "nw n !se !s !sw !w",
        "!nw !n ne e se s !w",
        "!nw !n !ne !e se s sw",
        "!nw !n !ne se s sw !w",
        "!n !ne !e !se s !sw w",
        "!nw !n !ne e !se s !sw !w",
    ),
    (
        "n ne e se !sw !w",
        "!nw ne e se s !w",
        "!nw !n e se s sw",
        "!n !ne se s sw w",
        "!nw !n e s sw !w",
        "!nw !n !ne e s !w",
        "!nw e se !s !sw !w",
        "!nw !n !ne s sw !w",
        "!nw !n !ne !e s w",
        "!n !ne !e !se sw w",
        "nw n !e !se !s sw w",
        "nw n ne !e !se !s !sw",
        "nw n ne !se !s !sw !w",
        "!nw n !ne e !s !sw !w",
        "!nw n !ne !e !se !s !sw w",
    ),
)


def skeletonize(image: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """Skeleton of a binary image, equal to `skimage.morphology.skeletonize(image)` (2-D).

    Args:
        image: HxW array, nonzero = foreground (bool or any integer/float dtype).

    Returns:
        bool HxW skeleton.
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"skeletonize expects a 2-D image, got shape {image.shape}")
    h, w = image.shape
    frame = np.zeros((h + 2, w + 2), dtype=np.uint8)
    frame[1:-1, 1:-1] = image != 0
    thin_inplace(frame)
    return frame[1:-1, 1:-1].astype(bool)


def thin_inplace(frame: npt.NDArray[np.uint8], dense_fraction: float = 1 / 1024) -> int:
    """Thin a padded uint8 0/1 image in place to its skimage skeleton; returns subiterations run.

    Args:
        frame: uint8 (H+2p)x(W+2p), C-contiguous, values 0/1, with an all-zero ring of width
            p >= 1 around the image (the ring plays skimage's zero padding and is never touched).
        dense_fraction: switch from whole-frame to active-pixel subiterations once the last
            two subiterations removed fewer than this fraction of the frame's pixels together
            (speed only, not results). A dense (bit-packed) subiteration costs ~0.5 ns per
            frame pixel, a sparse one ~150 ns per active pixel, and the first active set is
            ~1.4x the last two subiterations' removals: 1/1024 was the fastest setting on
            1024 px boundary maps (1/256 .. 1/4096 measured).
    """
    assert frame.dtype == np.uint8 and frame.flags.c_contiguous and frame.ndim == 2
    rows, cols = frame.shape
    packed = _PackedFrame(frame)
    n_sub = 0
    quiet = 0
    n_prev: int | None = None
    # Dense phase: whole-frame subiterations while many pixels go at once.
    while True:
        n_removed = packed.subiteration(n_sub & 1)
        n_sub += 1
        quiet = quiet + 1 if n_removed == 0 else 0
        if quiet >= 2:
            frame[...] = packed.unpack()
            return n_sub
        if n_prev is not None and n_prev + n_removed < dense_fraction * frame.size:
            break
        n_prev = n_removed
    # Sparse phase: only foreground pixels next to a removal of the last two subiterations.
    frame[...] = packed.unpack()
    removed_prev, last = packed.last_removals()
    del packed
    remove_tables = _REMOVE
    stride = cols
    flat = frame.ravel()
    off8 = np.array(
        [-stride - 1, -stride, -stride + 1, 1, stride + 1, stride, stride - 1, -1], dtype=np.intp
    )
    off9 = np.array([0, *off8.tolist()], dtype=np.intp)
    stamp = np.empty(flat.size, dtype=np.intp)

    def foreground_near(removed: npt.NDArray[np.intp]) -> npt.NDArray[np.intp]:
        """Foreground pixels in the 3x3 neighbourhood of `removed`, each once."""
        cand = (removed[:, None] + off9).ravel()
        cand = cand[flat[cand] != 0]
        # de-duplicate in O(n): the last write of each index wins, keep that occurrence only
        order = np.arange(cand.size, dtype=np.intp)
        stamp[cand] = order
        return cand[stamp[cand] == order]

    # `last` = the previous subiteration's removals: with this one's, they make the next set.
    active = foreground_near(np.concatenate([removed_prev, last]))
    while active.size > _PYTHON_BELOW:
        # bit k of the code = neighbour k (NW, N, NE, E, SE, S, SW, W) is foreground
        code = np.packbits(flat[active[:, None] + off8], axis=1, bitorder="little").ravel()
        gone = active[remove_tables[n_sub & 1][code].view(bool)]
        flat[gone] = 0
        n_sub += 1
        active = foreground_near(np.concatenate([last, gone]))
        last = gone
    if active.size:
        n_sub = _thin_tail(flat, active.tolist(), last.tolist(), stride, n_sub)
    return n_sub


class _PackedFrame:
    """A padded 0/1 frame as bits with whole-frame Zhang-Suen subiterations as word-wide ops.

    Layout: row-major, 64 pixels per little-endian 64-bit word (bit b of word j of a row =
    column 64 j + b), rows padded to whole words, all rows in one flat word array. The north and
    south neighbours of a word are the words one row before / after it, and its west / east
    neighbour planes are one-bit shifts with the carry from the previous / next word in flat
    order; across a row end that carry is a ring or padding pixel, i.e. 0 as it should be. So
    every operand is a contiguous slice of a flat array (numpy's fastest case).

    Exact: each removal table is evaluated as its sum of products (`_REMOVE_TERMS`) on the eight
    neighbour bit planes, and only foreground bits are cleared, so the zero ring and the padding
    bits past the last column stay 0 (they are the zero padding skimage reads).
    """

    def __init__(self, frame: npt.NDArray[np.uint8]) -> None:
        rows, cols = frame.shape
        nbytes = -(-cols // 8)
        words = max(-(-nbytes // 8), 1)
        buf = np.zeros((rows, 8 * words), dtype=np.uint8)
        buf[:, :nbytes] = np.packbits(frame, axis=1, bitorder="little")
        self.rows, self.cols, self.words = rows, cols, words
        self.bits = buf.view("<u8").ravel()  # rows * words words
        size = self.bits.size
        self._west = np.zeros(size, dtype=np.uint64)
        self._east = np.zeros(size, dtype=np.uint64)
        self._not = np.empty((3, size), dtype=np.uint64)  # complement of bits, west, east
        inner = max(rows - 2, 0) * words
        n_pairs = max(len(_program(p)[0]) for p in (0, 1))
        self._pairs = np.empty((n_pairs, inner), dtype=np.uint64)
        self._term = np.empty(inner, dtype=np.uint64)
        self._removed = np.zeros(inner, dtype=np.uint64)
        self._removed_prev = np.zeros(inner, dtype=np.uint64)

    def subiteration(self, parity: int) -> int:
        """One parallel subiteration of the given parity (0 = first); returns pixels removed."""
        bits, west, east = self.bits, self._west, self._east
        self._removed, self._removed_prev = self._removed_prev, self._removed
        removed = self._removed
        if self.rows < 3:
            return 0
        one, top = np.uint64(1), np.uint64(63)
        not_bits, not_west, not_east = self._not
        # west = bits << 1 | previous word >> 63, east = bits >> 1 | next word << 63, in flat
        # order (a carry across a row end is a ring / padding pixel: 0, as it should be; the
        # frame's very first / last word is ring and gets none)
        np.left_shift(bits, one, out=west)
        np.right_shift(bits[:-1], top, out=not_bits[1:])
        np.bitwise_or(west[1:], not_bits[1:], out=west[1:])
        np.right_shift(bits, one, out=east)
        np.left_shift(bits[1:], top, out=not_bits[:-1])
        np.bitwise_or(east[:-1], not_bits[:-1], out=east[:-1])
        np.invert(bits, out=not_bits)
        np.invert(west, out=not_west)
        np.invert(east, out=not_east)
        size = bits.size
        n = self.words
        up, mid, down = slice(0, size - 2 * n), slice(n, size - n), slice(2 * n, size)
        # literal ids: 0..7 = neighbours in code-bit order (_NEIGHBOURS), 8..15 = negated
        planes = []
        for sources in ((west, bits, east), (not_west, not_bits, not_east)):
            w, c, e = sources
            planes += [w[up], c[up], e[up], e[mid], e[down], c[down], w[down], w[mid]]
        pairs, terms = _program(parity)
        for i, (a, b) in enumerate(pairs):
            planes.append(np.bitwise_and(planes[a], planes[b], out=self._pairs[i]))
        term = self._term
        for i, literals in enumerate(terms):
            dst = removed if i == 0 else term
            if len(literals) == 1:
                np.copyto(dst, planes[literals[0]])
            else:
                np.bitwise_and(planes[literals[0]], planes[literals[1]], out=dst)
                for lit in literals[2:]:
                    np.bitwise_and(dst, planes[lit], out=dst)
            if i:
                np.bitwise_or(removed, term, out=removed)
        here = bits[mid]
        np.bitwise_and(removed, here, out=removed)
        np.bitwise_xor(here, removed, out=here)
        return _popcount(removed)

    def unpack(self) -> npt.NDArray[np.uint8]:
        """The frame as uint8 0/1."""
        rows_bytes = self.bits.view(np.uint8).reshape(self.rows, 8 * self.words)
        return np.unpackbits(rows_bytes, axis=1, count=self.cols, bitorder="little")

    def last_removals(self) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
        """Ascending flat indices (into the uint8 frame) of the pixels removed by the
        second-to-last and by the last subiteration."""
        return self._flat_nonzero(self._removed_prev), self._flat_nonzero(self._removed)

    def _flat_nonzero(self, plane: npt.NDArray[np.uint64]) -> npt.NDArray[np.intp]:
        """Ascending flat indices into the uint8 frame of the set bits of a removal plane
        (frame rows 1 .. rows-2); the cost grows with the number of nonzero words."""
        nonzero_words = np.flatnonzero(plane)
        word_bits = np.unpackbits(plane[nonzero_words].view(np.uint8), bitorder="little")
        set_bits = np.flatnonzero(word_bits.view(bool))
        word = nonzero_words[set_bits >> 6]
        row = word // self.words + 1
        return row * self.cols + (word % self.words) * 64 + (set_bits & 63)


def _literal(token: str) -> int:
    """Literal id of a `_REMOVE_TERMS` token: neighbour k -> k, "!" neighbour k -> 8 + k."""
    negated = token.startswith("!")
    return _NEIGHBOURS.index(token.lstrip("!")) + 8 * negated


@functools.cache
def _program(parity: int) -> tuple[tuple[tuple[int, int], ...], tuple[tuple[int, ...], ...]]:
    """(pairs, terms) for a parity's removal formula with shared sub-products: pair i is the AND
    of two literals (new literal id 16 + i), each term the AND of its literals, result = OR of
    the terms. Pairs are picked greedily (most frequent pair first): ~56 word ops instead of ~95.
    """
    terms = [{_literal(tok) for tok in term.split()} for term in _REMOVE_TERMS[parity]]
    pairs: list[tuple[int, int]] = []
    while True:
        counts = Counter(p for t in terms for p in itertools.combinations(sorted(t), 2))
        if not counts:
            break
        (a, b), n = counts.most_common(1)[0]
        if n < 2:
            break
        new = 16 + len(pairs)
        pairs.append((a, b))
        for t in terms:
            if a in t and b in t:
                t -= {a, b}
                t.add(new)
    return tuple(pairs), tuple(tuple(sorted(t)) for t in terms)


def _popcount(words: npt.NDArray[np.uint64]) -> int:
    """Number of set bits."""
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return int(np.bitwise_count(words).sum(dtype=np.int64))
    return int(np.unpackbits(words.view(np.uint8)).sum(dtype=np.int64))


def _thin_tail(
    flat: npt.NDArray[np.uint8], active: list[int], last: list[int], stride: int, n_sub: int
) -> int:
    """The same active-pixel subiterations in plain Python, for the last few dozen pixels (the
    slowly eroding spurs take ~70 subiterations; numpy's per-call cost dominates there)."""
    buf = memoryview(flat)
    tables = (bytes(_REMOVE[0]), bytes(_REMOVE[1]))
    nw, n, ne, e, se, s, sw, w = (
        -stride - 1,
        -stride,
        -stride + 1,
        1,
        stride + 1,
        stride,
        stride - 1,
        -1,
    )
    around = (0, nw, n, ne, e, se, s, sw, w)
    while active:
        table = tables[n_sub & 1]
        gone = [
            i
            for i in active
            if table[
                buf[i + nw]
                | buf[i + n] << 1
                | buf[i + ne] << 2
                | buf[i + e] << 3
                | buf[i + se] << 4
                | buf[i + s] << 5
                | buf[i + sw] << 6
                | buf[i + w] << 7
            ]
        ]
        for i in gone:
            buf[i] = 0
        n_sub += 1
        active = list({i + o for i in last + gone for o in around if buf[i + o]})
        last = gone
    return n_sub


def _flat_nonzero(mask: npt.NDArray[np.uint8]) -> npt.NDArray[np.intp]:
    """Flat (row-major) indices of the nonzero pixels of a C-contiguous uint8 0/1 2-D array,
    ascending (read as bool: half the time of ``np.flatnonzero`` on uint8 or ``cv2.findNonZero``)."""
    assert mask.dtype == np.uint8 and mask.flags.c_contiguous
    return np.flatnonzero(mask.view(bool))
