"""Stage 1: pretrain the boundary model on SA-1B with Ray Train (resumable, MLflow-tracked).

Same flags as ``directsam pretrain``. Submit to a cluster with, for example::

    ray job submit --working-dir . -- python ray_jobs/pretrain.py \
        --config configs/pretrain.yaml --data s3://bucket/sa1b/tars \
        --storage-path s3://bucket/runs --num-workers 8 --use-gpu \
        --tracking-uri http://mlflow:5000

Submitting the same command again resumes the run from its latest checkpoint.
Locally: ``python ray_jobs/pretrain.py --smoke-test`` (generated sample, CPU, about a minute).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Runs from a `--working-dir` upload without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from directsam.cli.train import pretrain_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(pretrain_main())
