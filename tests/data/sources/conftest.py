"""Fixtures of the S3-protocol tests: the server with the uploaded sample, the reference rows.

Modules that use them add ``pytest.mark.usefixtures("aws_env")`` so that the dummy
credentials are in the environment before the module's Ray cluster starts (its workers inherit
them); no endpoint variable is set, so every endpoint comes from a URI query or a flag.
"""

from __future__ import annotations

import os

import pytest

from directsam.data.sample import make_sample
from tests.data.sources.s3cases import NUM_IMAGES, PER_TAR
from tests.data.sources.s3server import CREDENTIALS, S3Server
from tests.labeling.helpers import R


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


@pytest.fixture(scope="session")
def server(tmp_path_factory):
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


@pytest.fixture(scope="session")
def reference(server):
    """Rows of the same tars from local disk through the three stages in one process (no Ray,
    no blocks, no writer), in the shard's row shape: what every S3 run must write."""
    import numpy as np

    from directsam.data.sources import SourceSpec, list_source
    from directsam.labeling.stages import LabelPredictor, encode_pseudo, prepare_rows
    from directsam.labeling.writer import rle_cell

    items = list_source(SourceSpec("sa1b", str(server.root / "tars"), dataset="sa"))
    rows = [dict(item.to_row(), block="0") for item in items]
    batch = {k: np.array([r[k] for r in rows], dtype=object) for k in rows[0]}
    predictor = LabelPredictor("scratch:tiny", R, 0.5, device="cpu", dtype="fp32")
    out = encode_pseudo(predictor(prepare_rows(batch, R, 3)), R)
    return {
        str(image_id): {
            "error": out["error"][i] or None,
            "source_uri": str(out["source_uri"][i]),
            "human_boundary": rle_cell(out["human_counts"][i], R),
            "pseudo_boundary": rle_cell(out["pseudo_counts"][i], R),
        }
        for i, image_id in enumerate(out["image_id"])
    }
