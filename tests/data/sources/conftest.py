"""Fixtures of the S3-protocol tests: the server with the uploaded sample, a reference run.

Modules that use them add ``pytest.mark.usefixtures("aws_env")`` so that the dummy
credentials are in the environment before the module's Ray cluster starts (its workers inherit
them); no endpoint variable is set, so every endpoint comes from a URI query or a flag.
"""

from __future__ import annotations

import os

import pytest

from directsam.data.sample import make_sample
from directsam.labeling.pipeline import run_labeling
from tests.data.sources.s3cases import NUM_IMAGES, PER_TAR, QUIET, s3_config
from tests.data.sources.s3server import CREDENTIALS, S3Server
from tests.labeling.helpers import read_generation


@pytest.fixture(scope="module")
def aws_env():
    """Dummy credentials for this module's processes and Ray workers; no endpoint variable,
    so every endpoint below comes from a URI query or a flag."""
    saved = {k: os.environ.get(k) for k in (*CREDENTIALS, "AWS_ENDPOINT_URL", "AWS_REGION")}
    os.environ.update(CREDENTIALS)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    os.environ.pop("AWS_REGION", None)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def server(aws_env, tmp_path_factory):
    root = make_sample(
        tmp_path_factory.mktemp("s3sample"),
        num_images=NUM_IMAGES,
        seed=14,
        kind="sa1b",
        height=48,
        width=64,
        images_per_tar=PER_TAR,
    )
    srv = S3Server()
    srv.upload(root / "tars", "data", "sa1b/tars")
    srv.root = root
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def reference(ray_local, server, tmp_path_factory):
    """The rows of the same tars labeled from the local disk."""
    out = tmp_path_factory.mktemp("ref")
    summary = run_labeling(s3_config(str(server.root / "tars"), out), **QUIET)
    return read_generation(summary["generation"])
