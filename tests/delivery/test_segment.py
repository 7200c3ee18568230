"""``directsam segment``: SA-1B-style JSON that our own SA-1B source reads back."""

from __future__ import annotations

import json

import numpy as np
import pytest

from directsam.data.decode import decode_image
from directsam.data.rle import rle_to_mask
from directsam.data.sa1b import parse_sa1b_annotation
from directsam.delivery.tokens import get_predictor, tokenize


def _threshold(checkpoint, image) -> float:
    return float(np.median(get_predictor(str(checkpoint)).predict_native([image])[0]))


def test_segment_one_image_cli_reads_back_as_sa1b(tmp_path, tiny_checkpoint, images):
    from PIL import Image

    from directsam.cli import main
    from directsam.data.sources import SourceSpec, list_source
    from directsam.data.sources.reader import read_items

    src = tmp_path / "sa_5.jpg"
    Image.fromarray(images[0]).save(src, quality=95)
    image = decode_image(src.read_bytes())
    t = _threshold(tiny_checkpoint, image)
    out = tmp_path / "out"
    argv = [
        "segment",
        "--image",
        str(src),
        "--output",
        str(out),
        "--checkpoint",
        str(tiny_checkpoint),
        "--threshold",
        repr(t),
        "--copy-images",
    ]
    assert main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == ["sa_5.jpg", "sa_5.json"]
    # Our SA-1B source lists the folder and reads the pair back (driver-side, no Ray).
    items = list_source(SourceSpec("sa1b", str(out)))
    rows = read_items(
        {
            k: np.array(
                [getattr(i, k) if k in i.__dataclass_fields__ else i.to_row()[k] for i in items],
                dtype=object,
            )
            for k in items[0].to_row()
        }
    )
    assert list(rows["image_id"]) == ["sa_5"] and rows["error"][0] is None
    info, rles = parse_sa1b_annotation(rows["annotation"][0], "sa_5.json")
    assert (info["height"], info["width"]) == image.shape[:2]
    expected = tokenize(image, str(tiny_checkpoint), threshold=t)[0]
    assert rles == [r["segmentation"] for r in expected["masks"]]
    assert rows["image_bytes"][0] == src.read_bytes()
    # Bad input: exit status 1, no JSON.
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"nope")
    assert (
        main(
            [
                "segment",
                "--image",
                str(bad),
                "--output",
                str(out),
                "--checkpoint",
                str(tiny_checkpoint),
            ]
        )
        == 1
    )
    assert not (out / "broken.json").exists()


@pytest.mark.ray
@pytest.mark.slow
def test_segment_ray_job_round_trips_through_sa1b_source(
    ray_local, tmp_path, sample_root, tiny_checkpoint
):
    from directsam.data.sources import SourceSpec, read_source
    from directsam.delivery.segment import SUCCESS_FILE, run_segment

    n = 4
    first = decode_image(open(sorted((sample_root).glob("sa_*/sa_*.jpg"))[0], "rb").read())
    t = _threshold(tiny_checkpoint, first)
    out = tmp_path / "seg"
    summary = run_segment(
        SourceSpec("sa1b", str(sample_root / "tars"), num_samples=n),
        out,
        str(tiny_checkpoint),
        threshold=t,
        device="cpu",
        batch_size=3,
        copy_images=True,
        log=lambda *_: None,
    )
    assert summary["num_images"] == summary["num_ok"] == n and summary["num_failed"] == 0
    assert json.loads((out / SUCCESS_FILE).read_text())["num_ok"] == n
    rows = read_source(SourceSpec("sa1b", str(out))).take_all()
    assert len(rows) == n and all(r["error"] is None for r in rows)
    total = 0
    for row in sorted(rows, key=lambda r: r["image_id"]):
        image = decode_image(row["image_bytes"])
        info, rles = parse_sa1b_annotation(row["annotation"], row["image_id"])
        assert info["image_id"] == row["image_id"]
        expected = tokenize(image, str(tiny_checkpoint), threshold=t)[0]
        assert rles == [r["segmentation"] for r in expected["masks"]]
        # The masks tile the non-boundary pixels of the label map.
        stack = np.stack([rle_to_mask(r) for r in rles])
        assert (stack.sum(0) <= 1).all()
        np.testing.assert_array_equal(stack.any(0), expected["label_map"] > 0)
        total += len(rles)
    assert summary["num_tokens"] == total
