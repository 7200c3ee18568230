"""Stage 2: pseudo-label datasets with Ray Data into Parquet shards.

``directsam label`` / ``ray_jobs/pseudo_label.py`` run :func:`pipeline.run_labeling`. The
shards' layout and their readers (stage 3's ``read_merged_labels``) are the shard store,
``directsam.data.sources.shards``. Layout and contract: docs/LABELING.md.
"""

from directsam.labeling.config import LabelConfig

__all__ = ["LabelConfig"]
