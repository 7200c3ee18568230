"""Evaluate a checkpoint on a validation split: one model pass (cached), metrics per threshold.

Same flags as ``directsam evaluate``. Submit to a cluster with, for example::

    ray job submit --working-dir . -- python ray_jobs/evaluate.py \
        --checkpoint chendelong/DirectSAM-1800px-0424 --source coco --input s3://bucket/coco \
        --annotations s3://bucket/coco/annotations/instances_val2017.json \
        --resolution 1024 --tolerance 5 --num-samples 100 --thresholds 0.1,0.2,0.3,0.4,0.5 \
        --cache-dir s3://bucket/eval_cache --tracking-uri http://mlflow:5000

Locally: ``python ray_jobs/evaluate.py --smoke-test`` (CPU, under a minute).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Runs from a `--working-dir` upload without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from directsam.cli.evaluate import evaluate_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(evaluate_main())
