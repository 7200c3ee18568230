"""Property tests (hypothesis): RLE round trips agree with pycocotools, and no annotation bytes,
however malformed, crash a parser: each input parses or raises ``InputError``.
"""

from __future__ import annotations

import json

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pycocotools import mask as mask_utils

from directsam.data.coco import parse_coco_json, parse_coco_record
from directsam.data.rle import mask_to_rle, rle_area, rle_to_mask, rle_to_runs, segmentation_to_rle
from directsam.data.sa1b import parse_sa1b_annotation
from directsam.data.targets import annotation_to_boundary
from directsam.schema import ERROR_CODES, InputError

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

masks = st.tuples(st.integers(0, 24), st.integers(0, 24)).flatmap(
    lambda hw: arrays(np.bool_, hw, elements=st.booleans())
)
# Blocky masks (long runs, multi-character counts) as well as noise.
blocky = st.tuples(st.integers(1, 200), st.integers(1, 200), st.data()).map(
    lambda t: _blocks(t[0], t[1], t[2])
)


def _blocks(h: int, w: int, data) -> np.ndarray:
    m = np.zeros((h, w), bool)
    for _ in range(data.draw(st.integers(0, 4))):
        y0, x0 = data.draw(st.integers(0, h - 1)), data.draw(st.integers(0, w - 1))
        y1, x1 = data.draw(st.integers(y0, h)), data.draw(st.integers(x0, w))
        m[y0:y1, x0:x1] ^= True
    return m


@SETTINGS
@given(st.one_of(masks, blocky))
def test_mask_rle_round_trip_matches_pycocotools(mask):
    rle = mask_to_rle(mask)
    h, w = mask.shape
    assert rle["size"] == [h, w] and isinstance(rle["counts"], str)
    np.testing.assert_array_equal(rle_to_mask(rle, expected_hw=(h, w)), mask)
    runs = rle_to_runs(rle)
    assert runs.min(initial=0) >= 0 and runs.sum() == h * w
    assert rle_area(rle) == int(mask.sum())
    if mask.size:
        ref = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        assert rle["counts"] == ref["counts"].decode()
        np.testing.assert_array_equal(mask_utils.decode(ref).astype(bool), mask)
        # uncompressed counts (COCO crowd) give the same compressed RLE
        seg = {"size": [h, w], "counts": [int(v) for v in runs]}
        assert segmentation_to_rle(seg, h, w) == rle


alphabet = st.text(alphabet=st.characters(min_codepoint=40, max_codepoint=120), max_size=30)


@SETTINGS
@given(alphabet, st.integers(0, 12), st.integers(0, 12))
def test_random_counts_decode_or_raise_input_error(counts, h, w):
    rle = {"size": [h, w], "counts": counts}
    try:
        mask = rle_to_mask(rle)
    except InputError as err:
        assert err.code == "annotation_invalid"
        return
    assert mask.shape == (h, w)
    if h * w:
        ref = mask_utils.decode({"size": [h, w], "counts": counts.encode()}).astype(bool)
        np.testing.assert_array_equal(mask, ref)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "image",
                    "annotations",
                    "segmentation",
                    "size",
                    "counts",
                    "width",
                    "height",
                    "image_id",
                    "file_name",
                    "id",
                    "images",
                    "iscrowd",
                    "x",
                ]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=25,
)


def _valid_sa1b() -> dict:
    m = np.zeros((6, 8), bool)
    m[1:4, 2:6] = True
    return {
        "image": {"image_id": 1, "width": 8, "height": 6, "file_name": "sa_1.jpg"},
        "annotations": [{"segmentation": mask_to_rle(m)}],
    }


def _mutations():
    """A valid SA-1B document with one value replaced at a random path."""

    def mutate(value, path_choice):
        doc = _valid_sa1b()
        paths = [
            ("image",),
            ("annotations",),
            ("image", "width"),
            ("image", "height"),
            ("image", "file_name"),
            ("image", "image_id"),
            ("annotations", 0),
            ("annotations", 0, "segmentation"),
            ("annotations", 0, "segmentation", "size"),
            ("annotations", 0, "segmentation", "counts"),
        ]
        path = paths[path_choice % len(paths)]
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return doc

    return st.builds(mutate, json_values, st.integers(0, 100))


def _check(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except InputError as err:
        assert err.code in ERROR_CODES and str(err).startswith(f"{err.code}: ")
        return None


@SETTINGS
@given(st.one_of(json_values, _mutations()), st.booleans())
def test_random_json_never_crashes_the_annotation_parsers(doc, as_text):
    data = json.dumps(doc) if as_text else json.dumps(doc).encode()
    parsed = _check(parse_sa1b_annotation, data, "x.json")
    if parsed is not None:
        info, rles = parsed
        hw = (info["height"], info["width"])
        # The parsed masks reach the boundary builder: only InputErrors may come out.
        if hw[0] * hw[1] <= 10_000:
            _check(
                annotation_to_boundary,
                data.encode() if as_text else data,
                "sa1b",
                hw,
                16,
                3,
                "x.json",
            )
    _check(parse_coco_record, data, "x", image_hw=(6, 8))
    _check(parse_coco_json, data, "x.json")


@SETTINGS
@given(st.binary(max_size=64))
def test_random_bytes_never_crash_the_annotation_parsers(data):
    _check(parse_sa1b_annotation, data, "x.json")
    _check(parse_coco_record, data, "x", image_hw=(6, 8))
    _check(annotation_to_boundary, data, "labelmap", (6, 8), 16, 3, "x.png")
    _check(annotation_to_boundary, data, "shard", (6, 8), 16, 3, "x")
