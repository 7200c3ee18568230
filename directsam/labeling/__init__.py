"""Stage 2: pseudo-label datasets with Ray Data into Parquet shards, and read merged labels.

``directsam label`` / ``ray_jobs/pseudo_label.py`` run :func:`pipeline.run_labeling`;
stage 3 reads the shards with :func:`read_merged_labels`. Layout and contract: docs/LABELING.md.
"""

from directsam.labeling.config import LabelConfig
from directsam.labeling.merged import merged_label_counts, read_merged_labels

__all__ = ["LabelConfig", "merged_label_counts", "read_merged_labels"]
