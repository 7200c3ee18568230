"""CPU-only worker nodes: the CPU stages run there, scheduled by resources, not node names.

A local three-node cluster (``ray.cluster_utils.Cluster``) shaped like cluster/*.yaml: a head
with no CPUs (as ``resources: {CPU: 0}`` / ``num-cpus: "0"``), a CPU-only worker (the
``cpu_decode`` group) and a "GPU" worker with one fake GPU and one CPU. The model actor asks
for ``num_gpus=1`` (torch runs on the CPU here) and takes the GPU node's one CPU, as Ray Data
reserves one CPU per GPU actor; so every read/decode task can only run on the CPU-only node. The
job runs the GPU decode path (compressed bytes to the actor) and must give exactly the rows of
the plain CPU-path reference, bad images included.
"""

from __future__ import annotations

import pytest

from directsam.labeling import pipeline
from tests.labeling.corrupt import corrupt_sa1b
from tests.multinode import MB, multinode_cluster
from tests.reliability.helpers import (
    assert_rows_equal_reference,
    label_config,
    read_rows,
    reference_rows,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster():
    with multinode_cluster(
        {"num_cpus": 0, "object_store_memory": 100 * MB},
        [
            {"num_cpus": 2, "object_store_memory": 80 * MB},  # the CPU worker group
            {"num_cpus": 1, "num_gpus": 1, "object_store_memory": 80 * MB},  # the GPU node
        ],
        no_progress_timeout_s=180,
    ) as (c, (cpu_node, gpu_node)):
        yield c, cpu_node, gpu_node


def test_cpu_stages_run_on_cpu_only_nodes_and_bytes_reach_the_actor(cluster, tmp_path, monkeypatch):
    _, cpu_node, gpu_node = cluster
    expected = corrupt_sa1b(tmp_path / "in")
    cfg = label_config(tmp_path / "in", tmp_path / "out", 64, dataset="sa")
    cfg.thickness = 9  # as labeling uses it

    def compute(cfg):  # the GPU decode path, with the model on CPU torch behind a fake GPU
        return {"device": "cpu", "num_gpus": 1, "num_cpus": None, "decode_tasks": 2,
                "gpu_decode": True}  # fmt: skip

    where = tmp_path / "nodes.txt"
    real = pipeline.prepare_rows

    def recording(batch, **kwargs):
        import ray

        assert kwargs["decode_images"] is False  # header-only: bytes go on to the actor
        with open(where, "a") as f:
            f.write(ray.get_runtime_context().get_node_id() + "\n")
        return real(batch, **kwargs)

    monkeypatch.setattr(pipeline, "resolve_compute", compute)
    monkeypatch.setattr(pipeline, "prepare_rows", recording)
    summary = pipeline.run_labeling(cfg, log=lambda *_: None)

    nodes = where.read_text().split()
    assert nodes and set(nodes) == {cpu_node.node_id}  # never the head, never the GPU node
    assert gpu_node.node_id != cpu_node.node_id
    assert summary["complete"] and summary["num_rows"] == len(expected)
    rows, seen = read_rows(summary["generation"])
    assert sorted(seen) == sorted(expected)
    codes = {i: (r["error"] or "").split(":")[0] or None for i, r in rows.items()}
    assert codes == expected
    assert_rows_equal_reference(rows, reference_rows(cfg))
    assert all(r["height"] == 48 and r["width"] == 64 for r in rows.values() if not r["error"])
