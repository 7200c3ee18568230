"""Ray Data model stage: source rows (compressed images) -> SA-1B-style token documents.

``TokenizeStage`` loads the model once (``__init__``) and maps a batch of source rows to one
SA-1B JSON document per row (``__call__``). It needs no Ray: a unit test calls it on a dict
batch. In a pipeline it is an actor class::

    ds.map_batches(TokenizeStage, fn_constructor_kwargs={...}, batch_size=8, num_gpus=1,
                   compute=ray.data.ActorPoolStrategy(size=num_gpus))   # Ray-specific line

A row that cannot be read, decoded or run keeps its place with ``error`` set and no document.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from directsam.schema import (
    DATASET,
    ERROR,
    HEIGHT,
    IMAGE_BYTES,
    IMAGE_ID,
    MODEL_FAILED,
    SOURCE_URI,
    WIDTH,
    InputError,
)

DOCUMENT = "sa1b_json"  # output column: the SA-1B document as JSON text ("" on failure)
NUM_TOKENS = "num_tokens"
FILE_NAME = "file_name"


def cell_str(value: Any) -> str:
    """A text cell, "" for anything else: Ray turns all-null object columns into float NaNs."""
    return value if isinstance(value, str) else ""


def image_file_name(image_id: str, source_uri: str) -> str:
    """``<basename of image_id><extension of source_uri>`` (``.jpg`` when it has none)."""
    from directsam.data.sources.reader import source_uri_basename

    ext = "." + source_uri_basename(source_uri).rsplit(".", 1)[-1] if "." in source_uri else ""
    return image_id.rsplit("/", 1)[-1] + (ext.lower() if len(ext) > 1 else ".jpg")


class TokenizeStage:
    """Source rows -> token documents, one model per instance (a Ray Data actor).

    Args:
        checkpoint: checkpoint spec (also ``models:/NAME/VERSION``).
        threshold: boundary threshold; default the checkpoint's, else 0.5.
        resolution: model input side; default the checkpoint's, else 1024.
        max_tokens, min_area: denoiser settings (None = raw connected components).
        device, dtype: as for :class:`~directsam.inference.BoundaryPredictor`.

    Input columns: ``image_id``, ``image_bytes`` (compressed) and optionally ``source_uri``,
    ``dataset``, ``error``. Output: those (minus ``image_bytes`` unless ``keep_bytes``) plus
    ``height``, ``width``, ``num_tokens``, ``file_name``, ``sa1b_json`` (JSON text) and ``error``
    (``"<code>: <detail>"``, or ``""`` for a good row).
    """

    def __init__(
        self,
        checkpoint: str,
        threshold: float | None = None,
        resolution: int | None = None,
        max_tokens: int | None = None,
        min_area: int | None = None,
        device: str = "auto",
        dtype: str = "auto",
        keep_bytes: bool = False,
    ):
        from directsam.delivery.tokens import DEFAULT_THRESHOLD, get_predictor

        self.predictor = get_predictor(checkpoint, resolution, device, dtype)
        self.threshold = float(
            threshold or self.predictor.meta.get("threshold") or DEFAULT_THRESHOLD
        )
        self.max_tokens, self.min_area, self.keep_bytes = max_tokens, min_area, keep_bytes
        self.meta = {
            "checkpoint": checkpoint,
            "checkpoint_sha": self.predictor.checkpoint_sha,
            "threshold": self.threshold,
            "resolution": self.predictor.resolution,
            "max_tokens": max_tokens,
            "min_area": min_area,
        }

    def _documents(self, rows: list[int], batch: dict[str, np.ndarray], images: list) -> list:
        from directsam.delivery.sa1b_json import sa1b_document
        from directsam.delivery.tokens import probs_to_token_output

        docs = []
        for i, image, probs in zip(rows, images, self.predictor.predict_native(images)):
            tokens = probs_to_token_output(probs, self.threshold, self.max_tokens, self.min_area)
            image_id = str(batch[IMAGE_ID][i])
            uri = cell_str(batch[SOURCE_URI][i]) if SOURCE_URI in batch else ""
            meta = {**self.meta, "source_uri": uri}
            if DATASET in batch:
                meta["dataset"] = cell_str(batch[DATASET][i])
            h, w = image.shape[:2]
            name = image_file_name(image_id, uri)
            docs.append((sa1b_document(image_id, h, w, tokens["masks"], name, meta), name))
        return docs

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from directsam.data.decode import decode_image

        n = len(batch[IMAGE_ID])
        # "" (not None) for good rows: an all-null object column does not survive Arrow intact.
        errors = np.array([cell_str(e) for e in batch.get(ERROR, [None] * n)], dtype=object)
        docs = np.array([""] * n, dtype=object)
        names = np.array([""] * n, dtype=object)
        heights, widths, counts = (np.zeros(n, dtype=np.int64) for _ in range(3))
        rows, images = [], []
        for i in range(n):
            if errors[i]:
                continue
            try:
                image = decode_image(bytes(batch[IMAGE_BYTES][i]), name=str(batch[IMAGE_ID][i]))
            except InputError as err:
                errors[i] = str(err)
                continue
            rows.append(i)
            images.append(image)
        done = []
        try:
            done = list(zip(rows, self._documents(rows, batch, images)))
        except Exception:  # noqa: BLE001 - retry one row at a time, fail only the bad rows
            for i, image in zip(rows, images):
                try:
                    done.extend(zip([i], self._documents([i], batch, [image])))
                except Exception as err:  # noqa: BLE001 - becomes this row's error
                    errors[i] = str(
                        InputError(
                            MODEL_FAILED, f"{batch[IMAGE_ID][i]}: {type(err).__name__}: {err}"
                        )
                    )
        for i, (doc, name) in done:
            docs[i] = json.dumps(doc, separators=(",", ":"))
            names[i] = name
            heights[i], widths[i] = doc["image"]["height"], doc["image"]["width"]
            counts[i] = len(doc["annotations"])
        drop = () if self.keep_bytes else (IMAGE_BYTES,)
        out = {k: v for k, v in batch.items() if k not in (*drop, ERROR)}
        out.update(
            {HEIGHT: heights, WIDTH: widths, NUM_TOKENS: counts, FILE_NAME: names, DOCUMENT: docs}
        )
        out[ERROR] = errors
        return out
