"""Ray Tune threshold sweep over cached probabilities, one MLflow run per trial + a summary run.

Same flags as ``directsam sweep``. Submit to a cluster with, for example::

    ray job submit --working-dir . -- python ray_jobs/sweep.py \
        --config configs/sweep.yaml --checkpoint /mnt/ckpts/dsa-1024 \
        --source labelmap --input s3://bucket/ADE20k --cache-dir s3://bucket/eval_cache \
        --tracking-uri http://mlflow:5000 --thresholds 0.1,0.2,0.3,0.4,0.5 --tolerances 3,5

Locally: ``python ray_jobs/sweep.py --smoke-test`` (CPU, under a minute).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Runs from a `--working-dir` upload without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from directsam.cli.evaluate import sweep_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(sweep_main())
