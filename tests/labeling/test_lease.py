"""The output lease: a second run refuses while the first is alive; a dead run's lease expires."""

from __future__ import annotations

import json
import time

import pytest

from directsam.labeling.lease import Lease, LeaseHeldError, LeaseLostError


def test_second_writer_is_refused_naming_the_owner(tmp_path):
    gen = str(tmp_path / "ds" / "gen-x")
    with Lease(gen, ttl_s=60, settle_s=0.01) as first:
        record = json.loads((tmp_path / "ds" / "gen-x" / "_lease.json").read_text())
        assert record["owner"] == first.owner and record["ttl_s"] == 60
        with pytest.raises(LeaseHeldError) as err:
            Lease(gen, ttl_s=60, settle_s=0.01).acquire()
        message = str(err.value)
        assert first.owner in message and "--output" in message and "expires 60 s" in message
    assert not (tmp_path / "ds" / "gen-x" / "_lease.json").exists()  # released
    Lease(gen, settle_s=0.01).acquire().release()  # free again


def test_dead_owner_lease_expires_and_heartbeats_keep_a_live_one(tmp_path):
    gen = tmp_path / "gen"
    gen.mkdir()
    stale = {"owner": "host:1:dead", "started": 0, "heartbeat": time.time() - 10, "ttl_s": 5}
    (gen / "_lease.json").write_text(json.dumps(stale))
    with Lease(str(gen), ttl_s=0.4, settle_s=0.01) as lease:  # the dead run's lease is expired
        before = json.loads((gen / "_lease.json").read_text())["heartbeat"]
        time.sleep(0.6)  # a few heartbeats (every ttl/4)
        assert json.loads((gen / "_lease.json").read_text())["heartbeat"] > before
        with pytest.raises(LeaseHeldError):  # still fresh thanks to the heartbeat
            Lease(str(gen), ttl_s=0.4, settle_s=0.01).acquire()
        lease.check()


def test_a_run_whose_lease_was_taken_over_stops_before_writing(tmp_path):
    gen = tmp_path / "gen"
    lease = Lease(str(gen), ttl_s=0.2, settle_s=0.01).acquire()
    other = {"owner": "elsewhere:2:x", "started": 0, "heartbeat": time.time(), "ttl_s": 60}
    (gen / "_lease.json").write_text(json.dumps(other))
    time.sleep(0.3)
    with pytest.raises(LeaseLostError, match="taken over by elsewhere:2:x"):
        lease.check()
    lease.release()
    assert json.loads((gen / "_lease.json").read_text())["owner"] == "elsewhere:2:x"  # kept
