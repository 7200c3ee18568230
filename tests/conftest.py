"""Shared fixtures: hermetic environment, a module-scoped local Ray cluster, sample data.

Ray on 2 cores is slow to start (~5 s), so one local cluster serves a whole test module
(`ray_local`). Multi-process tests (TorchTrainer with workers, `ray.cluster_utils.Cluster`,
`ray start --head`) are marked `slow` and manage their own clusters.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Hermetic settings for every test process (and the Ray workers it starts): no token auth on
# throwaway local clusters, no hub downloads, no progress-bar spam.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.pop("RAY_ADDRESS", None)


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # pragma: no cover - torch missing means no GPU either
        has_cuda = False
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray cluster shared by one test module (2 CPUs, small object store)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(
        address="local",  # a fresh cluster even when another `ray start` cluster is running
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=300 * 1024 * 1024,
        log_to_driver=True,
    )
    try:
        import ray.data

        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
    except ImportError:  # pragma: no cover
        pass
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory) -> Path:
    """A generated SA-1B-format sample (8 images, folders + tar shards), shared by the session."""
    from directsam.data.sample import make_sample

    root = tmp_path_factory.mktemp("sample_sa1b")
    make_sample(root, num_images=8, seed=0, kind="sa1b")
    return root


@pytest.fixture
def mlflow_uri(tmp_path) -> str:
    """A fresh sqlite MLflow store for one test."""
    return f"sqlite:///{tmp_path / 'mlflow.db'}"
