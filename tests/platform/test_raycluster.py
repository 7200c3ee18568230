"""Storage-path checks before training: a local path on a multi-host cluster is refused early."""

from __future__ import annotations

import pytest

from directsam import raycluster
from directsam.config import ConfigError


def test_local_path_refused_on_a_multi_host_cluster(monkeypatch):
    monkeypatch.setattr(raycluster, "cluster_hosts", lambda: {"10.0.0.1", "10.0.0.2"})
    with pytest.raises(ConfigError) as err:
        raycluster.check_storage_path("/mnt/runs", shared_storage=False)
    message = str(err.value)
    assert "--storage-path '/mnt/runs'" in message and "2 hosts" in message
    assert "10.0.0.1, 10.0.0.2" in message and "--shared-storage" in message


@pytest.mark.parametrize(
    ("path", "shared"),
    [("s3://bucket/runs", False), ("gs://bucket/runs", False), ("/mnt/nfs/runs", True)],
)
def test_remote_or_declared_shared_paths_pass_on_many_hosts(monkeypatch, path, shared):
    monkeypatch.setattr(raycluster, "cluster_hosts", lambda: {"10.0.0.1", "10.0.0.2"})
    raycluster.check_storage_path(path, shared_storage=shared)


def test_file_uri_counts_as_local():
    assert not raycluster.is_remote_uri("file:///tmp/runs")
    assert raycluster.is_remote_uri("s3://bucket/runs")
    assert not raycluster.is_remote_uri("/tmp/runs")


def test_single_host_local_cluster_accepts_a_local_path(ray_local, tmp_path):
    # The real local cluster: one host, so a local path is shared by every node.
    assert len(raycluster.cluster_hosts()) == 1
    raycluster.check_storage_path(str(tmp_path), shared_storage=False)


def test_progress_logger_prints_counts_and_rate_at_most_every_interval(capsys, monkeypatch):
    clock = iter([0.0, 2.0, 8.0, 10.0])  # start, update (too soon), update (due), rate()
    monkeypatch.setattr(raycluster.time, "perf_counter", lambda: next(clock))
    log = raycluster.ProgressLogger(total=100, interval_s=4.0)
    log.update(20)
    assert capsys.readouterr().err == ""
    log.update(30)
    assert capsys.readouterr().err.strip() == "50/100 images, 5.00 img/s"
