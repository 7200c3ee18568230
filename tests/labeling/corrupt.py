"""Generated samples with known corruptions, and the error code each image must get."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from directsam.data.sample import make_sample


def corrupt_sa1b(root: Path) -> dict[str, str | None]:
    """SA-1B folder sample (10 images) with six broken images; returns id -> expected code."""
    make_sample(root, num_images=10, seed=3, kind="sa1b", height=48, width=64, images_per_tar=5)
    folder = root / "sa_000000"
    jpg = (folder / "sa_1.jpg").read_bytes()
    (folder / "sa_1.jpg").write_bytes(jpg[: len(jpg) // 2])  # truncated JPEG
    (folder / "sa_2.jpg").write_bytes(b"")  # zero-byte file
    (folder / "sa_3.jpg").write_bytes(b"\x00garbage, not an image" * 7)  # garbage bytes
    (folder / "sa_4.json").unlink()  # missing JSON
    (folder / "sa_5.json").write_bytes(b'{"image": {"image_id": 5, ')  # invalid JSON
    second = root / "sa_000001"
    doc = json.loads((second / "sa_6.json").read_text())
    size = doc["annotations"][0]["segmentation"]["size"]
    doc["annotations"][0]["segmentation"]["size"] = [size[0] + 1, size[1]]  # RLE size mismatch
    (second / "sa_6.json").write_text(json.dumps(doc))
    expected: dict[str, str | None] = {f"sa_{n}": None for n in range(1, 11)}
    expected.update(
        {
            "sa_1": "image_decode",
            "sa_2": "image_decode",
            "sa_3": "image_decode",
            "sa_4": "annotation_missing",
            "sa_5": "annotation_invalid",
            "sa_6": "rle_size_mismatch",
        }
    )
    return expected


def png_bytes(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def corrupt_labelmap(root: Path) -> dict[str, str | None]:
    """Label-map sample (5 images): one wrong-size label, one missing label, one garbage label."""
    make_sample(root, num_images=5, seed=4, kind="labelmap", height=48, width=64)
    (root / "labels" / "img_000001.png").write_bytes(png_bytes(np.ones((10, 12), np.uint8)))
    (root / "labels" / "img_000002.png").unlink()
    (root / "labels" / "img_000003.png").write_bytes(b"not a png")
    return {
        "img_000001": "label_map_size_mismatch",
        "img_000002": "annotation_missing",
        "img_000003": "annotation_invalid",
        "img_000004": None,
        "img_000005": None,
    }


def code_of(error: str | None) -> str | None:
    return None if error is None else error.split(":", 1)[0]
