"""A multi-node Ray cluster in one machine (``ray.cluster_utils.Cluster``) for placement and
node-failure tests: a head plus worker nodes with the CPUs/GPUs a test names."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

MB = 1024 * 1024


@contextmanager
def multinode_cluster(
    head: dict[str, Any], nodes: list[dict[str, Any]], no_progress_timeout_s: float
) -> Iterator[tuple[Any, list[Any]]]:
    """Start the head (``head``: its ``num_cpus``, ``object_store_memory``) and ``nodes``
    (``add_node`` kwargs each), connect the driver, and yield ``(cluster, nodes)``.

    Ray Data is set to fail after ``no_progress_timeout_s`` without progress, so a stage that
    cannot be placed (or an actor that never comes back) fails the test rather than hanging it.
    """
    import ray
    import ray.data
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()  # a module's shared local cluster: this test needs its own
    cluster = Cluster(initialize_head=True, head_node_args={**head, "include_dashboard": False})
    try:
        added = [cluster.add_node(**kwargs) for kwargs in nodes]
        cluster.wait_for_nodes()
        ray.init(address=cluster.address)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.execution_no_progress_timeout_s = no_progress_timeout_s
        yield cluster, added
    finally:
        ray.shutdown()
        cluster.shutdown()
