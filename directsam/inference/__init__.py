"""Inference: preprocessing, ``BoundaryPredictor`` (batched, bf16/fp16, pyramid), tokens and masks.

Importing this package loads numpy only; torch, transformers and cv2 load on first use.
"""

from directsam.inference.denoise import denoise_tokens
from directsam.inference.predictor import BoundaryPredictor, max_batch_for
from directsam.inference.preprocess import preprocess_images
from directsam.inference.pyramid import crop_boxes_xyxy, pyramid_predict
from directsam.inference.tokens import labels_to_masks, probs_to_tokens, token_stats

__all__ = [
    "BoundaryPredictor",
    "crop_boxes_xyxy",
    "denoise_tokens",
    "labels_to_masks",
    "max_batch_for",
    "preprocess_images",
    "probs_to_tokens",
    "pyramid_predict",
    "token_stats",
]
