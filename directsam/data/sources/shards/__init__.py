"""The labeled-shard store: what ``directsam label`` writes and stage 3 reads.

- ``layout``: where shards live (``OUTPUT/<dataset>/gen-<sha>/part-<key>.parquet``), block keys
  and file names, the ``_plan.json`` / ``_SUCCESS.json`` / ``_lease.json`` files (written
  atomically), generation discovery and choice.
- ``merged``: merged labels (pseudo OR human) as a Ray dataset, :func:`merged.read_merged_labels`.
- ``counts``: row, failure and held-out counts from the shards' columns.
- ``source``: a generation as the ``shards`` input source (re-labeling with a newer checkpoint).

It sits in ``directsam.data.sources`` (below labeling, training and evaluation), so every stage
reads shards the same way; the labeling job's block writer is ``directsam.labeling.writer``.
Importing it is cheap; import the submodules (this package re-exports nothing).
"""
