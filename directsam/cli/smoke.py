"""``--smoke-test``, one way for every job (label, pretrain, self-train, evaluate, sweep).

A smoke test fills the flags a user did not give with a tiny local run: the job's preset in
``configs/smoke/``, a generated SA-1B-format sample, MLflow in a sqlite file beside the outputs.
Flags the user gave win. Each job names its own folder and sample size; the pieces are here.
"""

from __future__ import annotations

from pathlib import Path

SMOKE_SEED = 0


def smoke_preset(job: str) -> str:
    """Absolute path of ``configs/smoke/<job>.yaml`` (found from any working directory)."""
    from directsam.data.sources.registry import repo_path

    return str(repo_path(f"configs/smoke/{job}.yaml").resolve())


def smoke_sample(workdir: str | Path, num_images: int = 8) -> Path:
    """A generated SA-1B-format sample (folders and tars) under ``workdir/sample``."""
    from directsam.data.sample import make_sample

    return make_sample(Path(workdir) / "sample", num_images=num_images, seed=SMOKE_SEED,
                       kind="sa1b")  # fmt: skip


def smoke_tracking_uri(workdir: str | Path) -> str:
    """MLflow in a sqlite file ``workdir/mlflow.db`` (absolute, so Ray workers agree)."""
    return f"sqlite:///{(Path(workdir) / 'mlflow.db').resolve()}"
