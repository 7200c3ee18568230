"""Synthetic sample datasets (SA-1B, label-map folder, COCO JSON) for tests, demos and benchmarks.

Scenes are textured background regions with wavy borders, overlapped by ellipse/polygon objects
that have parts, annotated the way SA-1B is: overlapping whole-object masks and part masks
plus region masks. Everything is deterministic in ``seed`` (image i uses
``default_rng([seed, i])``, so it does not depend on ``num_images``), and reruns write
byte-identical files (fixed JPEG quality, tar members with mtime 0 and uid/gid 0).
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import numpy as np

SampleKind = Literal["sa1b", "labelmap", "coco"]
KINDS: tuple[SampleKind, ...] = get_args(SampleKind)
DEFAULT_HEIGHT, DEFAULT_WIDTH = 192, 256
JPEG_QUALITY = 90


@dataclass
class Scene:
    """One synthetic image and its annotation.

    Attributes:
        image: uint8 HxWx3.
        masks: bool HxW visible masks, overlapping (wholes contain their parts).
        kinds: per mask, "region" | "object" | "part".
        label_map: int32 HxW, the finest kept mask covering each pixel (1..N; 0 only where
            a fragment under 10 pixels was dropped).
    """

    image: np.ndarray
    masks: list[np.ndarray] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    label_map: np.ndarray | None = None


def _smooth_noise(
    rng: np.random.Generator, h: int, w: int, cells: int, channels: int
) -> np.ndarray:
    """float32 HxWxC smooth random field in about [0, 1] (bicubic upsampling of a coarse grid)."""
    import cv2

    gh, gw = max(2, cells * h // max(h, w) + 2), max(2, cells * w // max(h, w) + 2)
    coarse = rng.random((gh, gw, channels)).astype(np.float32)
    out = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    return out.reshape(h, w, channels)


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """float32 HxWx3 in [0, 255]: base colour + linear gradient + smooth noise + grain."""
    base = rng.uniform(30, 225, 3)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = (np.cos(angle) * xx + np.sin(angle) * yy) / max(h, w)
    tex = base[None, None, :] + rng.uniform(-60, 60, 3)[None, None, :] * ramp[:, :, None]
    tex = tex + rng.uniform(5, 40) * (_smooth_noise(rng, h, w, int(rng.integers(3, 12)), 3) - 0.5)
    tex = tex + rng.normal(0.0, rng.uniform(1, 8), (h, w, 3))
    return np.clip(tex, 0, 255).astype(np.float32)


def _shape_mask(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """bool HxW ellipse or star-shaped polygon with a log-uniform size (many small ones)."""
    import cv2

    m = np.zeros((h, w), dtype=np.uint8)
    side = min(h, w)
    radius = float(np.exp(rng.uniform(np.log(max(3.0, side * 0.03)), np.log(side * 0.35))))
    cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
    if rng.random() < 0.5:
        axes = (max(2, int(radius)), max(2, int(radius * rng.uniform(0.3, 1.0))))
        cv2.ellipse(m, (cx, cy), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    else:
        n = int(rng.integers(3, 10))
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        radii = radius * rng.uniform(0.5, 1.0, n)
        pts = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)
        cv2.fillPoly(m, [np.round(pts).astype(np.int32)], 1)
    return m.astype(bool)


def _split_parts(rng: np.random.Generator, shape: np.ndarray) -> list[np.ndarray]:
    """0-3 parts of a (cropped) shape: one side of a random line through it, or an inner blob."""
    ys, xs = np.nonzero(shape)
    if len(ys) < 40:
        return []
    yy, xx = np.mgrid[0 : shape.shape[0], 0 : shape.shape[1]]
    parts = []
    for _ in range(int(rng.integers(0, 4))):
        k = int(rng.integers(0, len(ys)))
        cy, cx = ys[k], xs[k]
        if rng.random() < 0.5:
            a = rng.uniform(0, 2 * np.pi)
            part = shape & ((xx - cx) * np.cos(a) + (yy - cy) * np.sin(a) > 0)
        else:
            r = np.sqrt(len(ys) / np.pi) * rng.uniform(0.2, 0.5)
            part = shape & ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r)
        if 10 <= part.sum() < len(ys):
            parts.append(part)
    return parts


def _bbox(mask: np.ndarray) -> tuple[slice, slice]:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def make_scene(
    rng: np.random.Generator, height: int, width: int, num_objects: int | None = None
) -> Scene:
    """Generate one scene (image + overlapping SA-1B-style masks + finest label map).

    Args:
        rng: the only source of randomness.
        height, width: image size.
        num_objects: foreground objects (default 8..21); with parts and regions the mask
            count is about 2 x objects + 5 (20-60 at the default).
    """
    h, w = int(height), int(width)
    # Background regions: Voronoi cells with noise-warped distances (wavy borders).
    k = int(rng.integers(3, 7))
    seeds = rng.uniform(0, 1, (k, 2)) * np.array([h, w])
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    warp = (_smooth_noise(rng, h, w, 6, k) - 0.5) * 0.25 * max(h, w)
    dist = np.stack([np.hypot(yy - sy, xx - sx) for sy, sx in seeds], axis=2) + warp
    regions = np.argmin(dist, axis=2)
    del yy, xx, dist, warp
    image = np.zeros((h, w, 3), dtype=np.float32)
    region_masks = []
    for r in range(k):
        reg = regions == r
        if reg.any():
            box = _bbox(reg)
            crop = reg[box]
            tex = _texture(rng, crop.shape[0], crop.shape[1])
            image[box][crop] = tex[crop]
            region_masks.append(reg)

    # Objects, drawn in order; shapes and textures are made inside each bounding box only.
    n_obj = int(rng.integers(8, 22)) if num_objects is None else int(num_objects)
    objects: list[tuple[np.ndarray, tuple[slice, slice], list[np.ndarray]]] = []
    for _ in range(n_obj):
        shape = _shape_mask(rng, h, w)
        if shape.sum() < 10:
            continue
        box = _bbox(shape)
        crop = shape[box]
        parts = _split_parts(rng, crop)
        tex = _texture(rng, crop.shape[0], crop.shape[1])
        view = image[box]
        view[crop] = tex[crop]
        for part in parts:
            shade = rng.uniform(0.6, 1.4) * tex + rng.uniform(-30, 30, 3)
            view[part] = np.clip(shade[part], 0, 255)
        objects.append((shape, box, parts))

    # Visible masks: later objects occlude earlier ones and the regions.
    occluder = np.zeros((h, w), dtype=bool)
    visible: list[tuple[str, np.ndarray]] = []
    for shape, box, parts in reversed(objects):
        visible.append(("object", shape & ~occluder))
        for part in parts:
            full = np.zeros((h, w), dtype=bool)
            full[box] = part
            visible.append(("part", full & ~occluder))
        occluder |= shape
    visible.reverse()
    visible = [("region", reg & ~occluder) for reg in region_masks] + visible

    scene = Scene(image=np.clip(np.rint(image), 0, 255).astype(np.uint8))
    for kind, m in visible:
        if np.count_nonzero(m) >= 10:
            scene.masks.append(m)
            scene.kinds.append(kind)
    # Finest label: paint wholes, then parts, in order (regions first).
    label_map = np.zeros((h, w), dtype=np.int32)
    for i, m in enumerate(scene.masks, start=1):
        label_map[m] = i
    for i, (kind, m) in enumerate(zip(scene.kinds, scene.masks), start=1):
        if kind == "part":
            label_map[m] = i
    scene.label_map = label_map
    return scene


def _jpeg_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


def _png_bytes(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _write_tar(path: Path, members: list[tuple[str, bytes]]) -> None:
    """Reproducible tar: fixed mtime/owner/mode, members in the given order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for member_name, payload in members:
            info = tarfile.TarInfo(member_name)
            info.size, info.mtime, info.mode = len(payload), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(payload))


def _sa1b_record(scene: Scene, number: int, rng: np.random.Generator) -> dict:
    from directsam.data.rle import mask_to_rle, rle_bbox_xywh

    h, w = scene.image.shape[:2]
    anns = []
    for k, m in enumerate(scene.masks):
        rle = mask_to_rle(m)
        ys, xs = np.nonzero(m)
        p = int(rng.integers(0, len(ys)))
        anns.append(
            {
                "id": number * 1000 + k,
                "segmentation": rle,
                "bbox": rle_bbox_xywh(rle),
                "area": int(m.sum()),
                "predicted_iou": round(float(rng.uniform(0.85, 1.0)), 6),
                "stability_score": round(float(rng.uniform(0.9, 1.0)), 6),
                "crop_box": [0.0, 0.0, float(w), float(h)],
                "point_coords": [[float(xs[p]) + 0.5, float(ys[p]) + 0.5]],
            }
        )
    image = {"image_id": number, "width": w, "height": h, "file_name": f"sa_{number}.jpg"}
    return {"image": image, "annotations": anns}


def _polygons(mask: np.ndarray) -> list[list[float]]:
    import cv2

    contours, _ = cv2.findContours(
        mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
    )
    return [c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3]


def _coco_annotations(scene: Scene, image_id: int, first_id: int, rng) -> list[dict]:
    """Regions as compressed RLE, objects/parts as polygons, one object as a crowd (list RLE)."""
    from directsam.data.rle import mask_to_rle, rle_bbox_xywh, rle_to_runs

    objects = [i for i, kind in enumerate(scene.kinds) if kind == "object"]
    crowd = int(rng.choice(objects)) if objects else -1
    anns = []
    for k, (kind, m) in enumerate(zip(scene.kinds, scene.masks)):
        rle = mask_to_rle(m)
        polys = _polygons(m) if kind != "region" else []
        if k == crowd:
            seg: object = {"size": rle["size"], "counts": rle_to_runs(rle).tolist()}
        elif polys:
            seg = polys
        else:
            seg = rle
        anns.append(
            {
                "id": first_id + k,
                "image_id": image_id,
                "category_id": {"region": 1, "object": 2, "part": 3}[kind],
                "segmentation": seg,
                "area": int(m.sum()),
                "bbox": rle_bbox_xywh(rle),
                "iscrowd": int(k == crowd),
            }
        )
    return anns


def make_sample(
    output: str | Path,
    num_images: int = 8,
    seed: int = 0,
    kind: SampleKind = "sa1b",
    height: int | None = None,
    width: int | None = None,
    images_per_tar: int = 4,
    num_objects: int | None = None,
    first_number: int = 1,
) -> Path:
    """Write a synthetic dataset and return its root.

    Layouts (``<n>`` = first_number .. first_number + num_images - 1):

    * ``sa1b``: ``OUTPUT/sa_00000K/sa_<n>.jpg`` + ``sa_<n>.json`` (the extracted layout, one
      folder per tar) and ``OUTPUT/tars/sa_00000K.tar`` with the same members (``ray.data.
      read_webdataset`` groups ``sa_<n>.jpg``/``.json`` by key); ``images_per_tar`` images
      per shard. JSON: ``{"image": {image_id, width, height, file_name}, "annotations": [{id,
      segmentation: {size, counts}, bbox, area, predicted_iou, stability_score, crop_box,
      point_coords}]}``.
    * ``labelmap``: ``OUTPUT/images/img_<n:06d>.jpg`` + ``OUTPUT/labels/img_<n:06d>.png``,
      finest-segment label maps (1..N), uint8 PNGs for odd ``n`` and uint16 for even ``n``.
    * ``coco``: ``OUTPUT/images/<n:012d>.jpg`` + ``OUTPUT/annotations.json`` (COCO instances:
      regions as compressed RLE, objects and parts as polygons, one crowd object per image as
      uncompressed RLE with ``iscrowd: 1``; categories region/object/part).

    Args:
        output: root folder (created; existing files with the same names are overwritten).
        num_images: number of images (>= 1).
        seed: everything is a function of it.
        kind: which layout.
        height, width: image size (default 192 x 256).
        images_per_tar: SA-1B shard size.
        num_objects: objects per image (default random 8..21, giving about 20-60 masks).
        first_number: ``<n>`` of the first image, so that several samples (e.g. train and
            held-out parts made with different seeds) have disjoint ids. Image ``i`` is still
            drawn from ``default_rng([seed, i])``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if num_images < 1 or images_per_tar < 1 or first_number < 1:
        raise ValueError("num_images, images_per_tar and first_number must be >= 1")
    h = DEFAULT_HEIGHT if height is None else int(height)
    w = DEFAULT_WIDTH if width is None else int(width)
    if h < 8 or w < 8:
        raise ValueError(f"height and width must be >= 8, got {h} x {w}")
    root = Path(output)
    root.mkdir(parents=True, exist_ok=True)
    coco_images: list[dict] = []
    coco_anns: list[dict] = []
    shards: dict[str, list[tuple[str, bytes]]] = {}
    for i in range(num_images):
        number = first_number + i
        rng = np.random.default_rng([seed, i])
        scene = make_scene(rng, h, w, num_objects)
        jpeg = _jpeg_bytes(scene.image)
        if kind == "sa1b":
            record = json.dumps(_sa1b_record(scene, number, rng)).encode()
            shard = f"sa_{i // images_per_tar:06d}"
            folder = root / shard
            folder.mkdir(exist_ok=True)
            (folder / f"sa_{number}.jpg").write_bytes(jpeg)
            (folder / f"sa_{number}.json").write_bytes(record)
            shards.setdefault(shard, []).extend(
                [(f"sa_{number}.jpg", jpeg), (f"sa_{number}.json", record)]
            )
        elif kind == "labelmap":
            (root / "images").mkdir(exist_ok=True)
            (root / "labels").mkdir(exist_ok=True)
            stem = f"img_{number:06d}"
            (root / "images" / f"{stem}.jpg").write_bytes(jpeg)
            assert scene.label_map is not None
            small = number % 2 == 1 and scene.label_map.max() < 256
            dtype = np.uint8 if small else np.uint16
            (root / "labels" / f"{stem}.png").write_bytes(_png_bytes(scene.label_map.astype(dtype)))
        else:
            (root / "images").mkdir(exist_ok=True)
            file_name = f"{number:012d}.jpg"
            (root / "images" / file_name).write_bytes(jpeg)
            coco_images.append({"id": number, "file_name": file_name, "height": h, "width": w})
            coco_anns.extend(_coco_annotations(scene, number, len(coco_anns) + 1, rng))
    for shard, members in shards.items():
        _write_tar(root / "tars" / f"{shard}.tar", members)
    if kind == "coco":
        categories = [
            {"id": 1, "name": "region", "supercategory": "stuff"},
            {"id": 2, "name": "object", "supercategory": "thing"},
            {"id": 3, "name": "part", "supercategory": "thing"},
        ]
        doc = {"images": coco_images, "annotations": coco_anns, "categories": categories}
        (root / "annotations.json").write_text(json.dumps(doc))
    return root
