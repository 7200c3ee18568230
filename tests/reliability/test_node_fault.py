"""Node fault: the node holding the labeling model actor dies mid-run; no row is lost or doubled.

A local three-node cluster (``ray.cluster_utils.Cluster``): a head with the CPUs for reading,
decoding and RLE encoding, and two worker nodes with one fake GPU each and no CPU, so the only
thing that can run there is the model actor (which asks for ``num_gpus=1`` but runs torch on the
CPU). The pool has one actor; the second GPU node is the spare a spot fleet would provide. Once
the first shard is on disk, the node hosting the actor is removed (all its processes killed,
its object store lost). Ray restarts the actor on the spare node, retries its lost tasks and
rebuilds lost outputs; the job completes with every input row exactly once, equal to a plain
single-process reference.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from directsam.data.sample import make_sample
from directsam.data.sources.shards.layout import part_files
from directsam.labeling import pipeline
from tests.multinode import MB, multinode_cluster
from tests.reliability.helpers import (
    assert_rows_equal_reference,
    label_config,
    read_rows,
    reference_rows,
    wait_for,
)

pytestmark = pytest.mark.slow

NUM_IMAGES = 40
RESOLUTION = 384


def _cpu_model_on_fake_gpus(cfg):
    """resolve_compute for this test: model on CPU torch, actors scheduled with num_gpus=1."""
    return {"device": "cpu", "num_gpus": 1, "num_cpus": 0, "decode_tasks": 2}


def _actor_node(cluster_nodes: dict[str, object]) -> object | None:
    """The worker node holding the alive model actor (Ray Data's ``_MapWorker``), if any."""
    import ray._private.state as state

    for info in state.actors().values():
        if "MapWorker" in info.get("ActorClassName", "") and info.get("State") == "ALIVE":
            node = cluster_nodes.get(info["Address"]["NodeID"])
            if node is not None:
                return node
    return None


def _restarts() -> int:
    import ray._private.state as state

    return sum(
        int(info.get("NumRestarts", 0))
        for info in state.actors().values()
        if "MapWorker" in info.get("ActorClassName", "")
    )


@pytest.fixture
def cluster():
    with multinode_cluster(
        {"num_cpus": 2, "object_store_memory": 120 * MB},
        [{"num_cpus": 0, "num_gpus": 1, "object_store_memory": 80 * MB}] * 2,
        no_progress_timeout_s=120,  # fail, not hang, if the actor never comes back
    ) as (c, _):
        yield c


def test_removing_the_model_actor_node_loses_no_row(cluster, tmp_path, monkeypatch):
    sample = make_sample(
        tmp_path / "in",
        num_images=NUM_IMAGES,
        seed=21,
        kind="sa1b",
        height=48,
        width=64,
        images_per_tar=10,
    )
    cfg = label_config(sample, tmp_path / "out", RESOLUTION, dataset="sa")
    monkeypatch.setattr(pipeline, "resolve_compute", _cpu_model_on_fake_gpus)
    workers = {n.node_id: n for n in cluster.list_all_nodes() if n is not cluster.head_node}
    generation = Path(cfg.output) / "sa" / "gen-scratch-b0-0"
    injected: dict[str, object] = {}

    def inject() -> None:
        node = wait_for(lambda: part_files(str(generation)) and _actor_node(workers), 240)
        if node is None:
            return
        injected["shards_before"] = {Path(p).name for p in part_files(str(generation))}
        injected["node_id"] = node.node_id
        cluster.remove_node(node, allow_graceful=False)
        injected["at"] = time.time()

    killer = threading.Thread(target=inject, daemon=True)
    killer.start()
    summary = pipeline.run_labeling(cfg, log=lambda *_: None)
    killer.join(timeout=5)

    # The fault happened mid-run: some blocks were on disk, others were written after it.
    assert "at" in injected, "the run finished before the fault could be injected"
    before = injected["shards_before"]
    after = {
        p.name for p in generation.glob("part-*.parquet") if p.stat().st_mtime > injected["at"]
    }
    assert 0 < len(before) < summary["num_blocks"] and after
    assert _restarts() >= 1  # the actor came back on the spare GPU node
    import ray

    alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    assert injected["node_id"] not in alive

    # Every input row exactly once, equal to the plain reference run.
    rows, seen = read_rows(summary["generation"])
    assert summary["complete"] and summary["num_inputs"] == NUM_IMAGES
    assert len(seen) == len(set(seen)) == NUM_IMAGES
    assert summary["num_rows"] == summary["num_good"] == NUM_IMAGES
    assert_rows_equal_reference(rows, reference_rows(cfg))
