"""Stage 3: self-train on merged labels (pseudo OR human boundary) with Ray Train.

Same flags as ``directsam self-train``. Submit to a cluster with, for example::

    ray job submit --working-dir . -- python ray_jobs/self_train.py \
        --config configs/self_train.yaml --data s3://bucket/shards \
        --init /shared/runs/directsam-pretrain-<hash>/checkpoint_00100000 \
        --storage-path s3://bucket/runs --num-workers 8 --use-gpu \
        --tracking-uri http://mlflow:5000

Submitting the same command again resumes the run from its latest checkpoint.
Locally: ``python ray_jobs/self_train.py --smoke-test`` (labels a generated sample with a
random model, then self-trains on it; CPU, about a minute).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Runs from a `--working-dir` upload without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from directsam.cli.train import self_train_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(self_train_main())
