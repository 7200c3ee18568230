"""Stage 2 job: pseudo-label one dataset into Parquet shards with Ray Data.

Submit to a cluster (the working directory is uploaded; heavy deps come from the image):

    ray job submit --working-dir . -- python ray_jobs/pseudo_label.py \
        --config configs/pseudo_label.yaml --dataset SA1B \
        --output s3://bucket/dsa --gpu-actors 8

Locally: ``python ray_jobs/pseudo_label.py --smoke-test`` (generated 8-image sample, tiny random
model on CPU, MLflow in a sqlite file under outputs/smoke_label; well under a minute), or
python ray_jobs/pseudo_label.py --config configs/smoke/pseudo_label.yaml \
    --input /tmp/sample --output /tmp/labels
Flags are those of `directsam label` (see --help).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run from a --working-dir upload without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from directsam.cli.label import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
