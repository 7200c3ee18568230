"""Fetch SA-1B shards on a Ray cluster: one task per shard, resumable, verified, with a manifest.

Same flags as ``directsam fetch-sa1b``. Submit with, for example::

    ray job submit --working-dir . -- python ray_jobs/fetch_sa1b.py \
        --links sa1b_links.txt --output s3://bucket/sa1b --shards 0-99 --parallel 32

A local ``--output`` keeps every task on the driver's node unless ``--shared-storage``.
Locally: ``python ray_jobs/fetch_sa1b.py --smoke-test`` (two generated shards served on
127.0.0.1, fetched twice: the second run downloads nothing).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Runs from a `--working-dir` upload without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from directsam.cli.fetch import fetch_sa1b_main as main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
