"""Training and inference see the same pixels, and the training target sits where the
evaluation ground truth does.

SA-1B-format scenes go through the real code of each path:

* training: ``build_datasets`` (Ray Data: list, read, decode, resize, target) and
  ``to_model_input`` with augmentation off, i.e. what the Ray Train loop feeds the model;
* inference: ``BoundaryPredictor`` on the full-size image (``directsam predict``), the
  evaluation actor ``CachePredictor`` and the labeling actor ``LabelPredictor``; the tensor the
  model receives is captured by a forward pre-hook;
* evaluation: ``build_cache``, whose stored ground truth every score is computed against, and
  the human boundary stage 2 stores for stage 3 (``prepare_rows``).

Geometry: the images are 192 x 256 and the model input 128 x 128, so a rectangle on rows
48..95 and cols 64..191 lands exactly on rows 32..63, cols 32..95 at R (centre 47.5, 63.5 in
pixel indices). A band of odd thickness is centred on the mask edge; an even one sits half a
pixel down/right of it (cv2's kernel anchor at t // 2, DESIGN.md "Geometry"), the same in every
target and ground truth.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.ray

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "configs" / "smoke" / "pretrain.yaml"
H, W, R = 192, 256, 128
ROWS, COLS = (48, 96), (64, 192)  # the rectangle in the source image (half-open)
CENTRE = np.array([47.5, 63.5])  # its centre at R, in pixel indices (rows 32..63, cols 32..95)
#: A full-size image resized by ``preprocess_images`` (torch, antialiased) against the PIL
#: resize of the training data, in normalised units: the bound that
#: tests/inference/test_preprocess.py holds against the HF processor.
MEAN_TOL, MAX_TOL = 0.005, 0.03


def _write_sa1b(folder: Path, images: list[tuple[np.ndarray, list[np.ndarray]]]) -> Path:
    """``sa_<n>.jpg`` + ``.json`` per (image, masks), as ``make_sample`` writes them."""
    from PIL import Image

    from directsam.data.rle import mask_to_rle, rle_bbox_xywh
    from directsam.data.sample import JPEG_QUALITY

    folder.mkdir(parents=True)
    for number, (image, masks) in enumerate(images, start=1):
        Image.fromarray(image).save(folder / f"sa_{number}.jpg", quality=JPEG_QUALITY)
        anns = []
        for k, m in enumerate(masks):
            rle = mask_to_rle(m)
            anns.append({"id": k, "segmentation": rle, "bbox": rle_bbox_xywh(rle),
                         "area": int(m.sum()), "predicted_iou": 1.0, "stability_score": 1.0,
                         "crop_box": [0, 0, W, H], "point_coords": [[0.5, 0.5]]})  # fmt: skip
        info = {"image_id": number, "width": W, "height": H, "file_name": f"sa_{number}.jpg"}
        (folder / f"sa_{number}.json").write_text(json.dumps({"image": info, "annotations": anns}))
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """``rect``: the rectangle scene; ``scene``: a generated scene. Each folder holds the scene
    as ``sa_1`` plus a second image, which the 1% validation split takes, so that the training
    split is exactly ``sa_1``."""
    from directsam.data.sample import make_scene

    root = tmp_path_factory.mktemp("align")
    rect = np.zeros((H, W), dtype=bool)
    rect[ROWS[0] : ROWS[1], COLS[0] : COLS[1]] = True
    image = np.where(rect[..., None], 220, 40).astype(np.uint8).repeat(3, axis=2)
    scenes = [make_scene(np.random.default_rng([3, i]), H, W) for i in range(2)]
    return {
        "rect": _write_sa1b(root / "rect", [(image, [rect]), (image, [rect])]),
        "scene": _write_sa1b(root / "scene", [(s.image, s.masks) for s in scenes]),
    }


def _train_row(folder: Path, thickness: int, tmp: Path) -> dict[str, np.ndarray]:
    """The one training row of ``folder``: ``build_datasets``' train split, as the loop gets it."""
    from directsam.config import load_config
    from directsam.training.config import PretrainConfig
    from directsam.training.data import build_datasets

    cfg = load_config(PretrainConfig, SMOKE, overrides=[
        f"source.input={folder}", f"data.resolution={R}", f"data.thickness={thickness}",
        "validation.every_steps=0", f"run.storage_path={tmp}",
    ])  # fmt: skip
    train, _ = build_datasets(cfg)
    (row,) = train.take_all()
    return row


def _model_input(image_r: np.ndarray):
    """``to_model_input`` (augmentation off) of one uint8 (R, R, 3) training image."""
    import torch

    from directsam.training.data import to_model_input

    return to_model_input(torch.from_numpy(np.array(image_r, dtype=np.uint8))[None])


class _Capture:
    """Forward pre-hook: keeps the ``pixel_values`` each model call receives (fp32, NCHW)."""

    def __init__(self, model):
        self.seen = []
        model.register_forward_pre_hook(self, with_kwargs=True)

    def __call__(self, module, args, kwargs):
        x = kwargs.get("pixel_values", args[0] if args else None)
        self.seen.append(x.detach().float().contiguous().clone())


def _eval_cache_row(folder: Path, thickness: int, tmp: Path):
    """``sa_1`` of a freshly built evaluation cache (scratch:tiny; the GT does not depend on
    the model)."""
    from directsam.data.sources import SourceSpec
    from directsam.evaluation import cache as cache_mod
    from directsam.evaluation.config import EvalConfig
    from directsam.evaluation.evaluate import build_cache

    cfg = EvalConfig(
        checkpoint="scratch:tiny", source=SourceSpec("sa1b", str(folder), split="all"),
        resolution=R, thickness=thickness, device="cpu", dtype="fp32",
        cache_dir=str(tmp / f"cache-{thickness}"), output=str(tmp / "eval"), tracking=False,
        num_panels=0,
    )  # fmt: skip
    location = build_cache(cfg).location
    (row,) = [r for r in cache_mod.iter_cache(location) if r.image_id == "sa_1"]
    return row


def _stage2_human_boundary(folder: Path, thickness: int) -> np.ndarray:
    """The human boundary stage 2 stores for ``sa_1`` (stage 3 trains on it), decoded."""
    from directsam.data.rle import rle_to_mask
    from directsam.data.sources import SourceSpec, list_source
    from directsam.labeling.stages import HUMAN_COUNTS, prepare_rows

    (item,) = [i for i in list_source(SourceSpec("sa1b", str(folder))) if i.image_id == "sa_1"]
    row = {**item.to_row(), "block": 0}
    batch = {k: np.array([v], dtype=object) for k, v in row.items()}
    out = prepare_rows(batch, R, thickness)
    return rle_to_mask({"size": [R, R], "counts": out[HUMAN_COUNTS][0]})


def _centroid(mask: np.ndarray, border: int) -> np.ndarray:
    """(row, col) centroid of the True pixels outside the image border band."""
    inner = mask.copy()
    inner[:border], inner[-border:], inner[:, :border], inner[:, -border:] = (
        False,
        False,
        False,
        False,
    )
    ys, xs = np.nonzero(inner)
    return np.array([ys.mean(), xs.mean()])


def _content_centroid(image_r: np.ndarray) -> np.ndarray:
    """(row, col) centroid of the bright rectangle in a resized image, weighted by brightness
    above the background (linear resizes with symmetric filters keep it exactly)."""
    v = np.clip(image_r.astype(np.float64).mean(axis=2) - 40.0, 0, None)
    ys, xs = np.mgrid[: v.shape[0], : v.shape[1]]
    return np.array([(v * ys).sum(), (v * xs).sum()]) / v.sum()


# ----------------------------------------------------------------------------- pixels


def test_predictor_gets_the_training_pixels(ray_local, folders, tmp_path):
    import torch

    from directsam.data.decode import decode_image
    from directsam.data.sources import SourceSpec, read_source
    from directsam.evaluation.evaluate import CachePredictor, decode_for_eval
    from directsam.inference import BoundaryPredictor
    from directsam.labeling.stages import LabelPredictor

    folder = folders["scene"]
    train = _model_input(_train_row(folder, 2, tmp_path)["image"])
    assert train.shape == (1, 3, R, R) and train.dtype == torch.float32

    # directsam predict: the full-size decoded photo, resized by the predictor itself.
    predictor = BoundaryPredictor("scratch:tiny", device="cpu", dtype="fp32", resolution=R)
    seen = _Capture(predictor.model)
    predictor.predict([decode_image((folder / "sa_1.jpg").read_bytes())], out_size=(H, W))
    diff = (seen.seen[0] - train).abs()
    assert diff.mean().item() <= MEAN_TOL and diff.max().item() <= MAX_TOL, (
        f"mean {diff.mean().item():.5f} max {diff.max().item():.5f}"
    )

    # Evaluation actor on the evaluation's own decode (the image arrives at R already).
    ds = read_source(SourceSpec("sa1b", str(folder), split="all")).map_batches(
        decode_for_eval, fn_kwargs={"resolution": R, "thickness": 2}, batch_size=4
    )
    batch = ds.take_batch(4)
    first = list(batch["image_id"]).index("sa_1")
    evaluator = CachePredictor("scratch:tiny", R, device="cpu", dtype="fp32")
    seen = _Capture(evaluator.predictor.model)
    evaluator(batch)
    torch.testing.assert_close(seen.seen[0][first : first + 1], train, rtol=0, atol=1e-5)

    # Labeling actor (stage 2): uint8 images at R, normalised on the device.
    labeler = LabelPredictor("scratch:tiny", R, threshold=0.5, device="cpu", dtype="fp32")
    seen = _Capture(labeler.predictor.model)
    image = batch["image"][first : first + 1]
    labeler({"image_id": np.array(["sa_1"]), "error": np.array([None], dtype=object),
             "image": image})  # fmt: skip
    torch.testing.assert_close(seen.seen[0], train, rtol=0, atol=1e-5)


# ----------------------------------------------------------------------------- targets


@pytest.mark.parametrize("thickness", [2, 3])
def test_training_target_and_evaluation_gt_align(ray_local, folders, tmp_path, thickness):
    folder = folders["rect"]
    row = _train_row(folder, thickness, tmp_path)
    target = np.asarray(row["target"]).astype(bool)
    gt = _eval_cache_row(folder, thickness, tmp_path).gt
    human = _stage2_human_boundary(folder, thickness)
    assert target.shape == gt.shape == human.shape == (R, R)

    # The image border band is part of every target; the rectangle's band is what moves.
    c_target = _centroid(target, thickness)
    c_gt = _centroid(gt, thickness)
    c_human = _centroid(human, thickness)
    c_image = _content_centroid(np.asarray(row["image"]))
    report = f"target {c_target}, eval GT {c_gt}, stage 2 human {c_human}, image {c_image}"
    np.testing.assert_allclose(c_target, c_gt, atol=0.01, err_msg=report)
    np.testing.assert_allclose(c_human, c_gt, atol=0.01, err_msg=report)
    assert np.array_equal(target, gt) and np.array_equal(human, gt), report
    # Against the pixels: the resized image keeps the rectangle's centre, and the band is
    # centred on it (odd t) or half a pixel down/right (even t: cv2's anchor), never more.
    np.testing.assert_allclose(c_image, CENTRE, atol=0.1, err_msg=report)
    anchor = 0.0 if thickness % 2 else 0.5
    np.testing.assert_allclose(c_target, CENTRE + anchor, atol=0.01, err_msg=report)
