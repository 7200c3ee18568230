"""Offline checks of cluster/: Ray's own config validation plus our rules, and KubeRay structure.

The VM cluster YAMLs go through exactly what `ray up` runs first (`prepare_config` merges the
provider defaults, `validate_config` applies `ray/autoscaler/ray-schema.json` and Ray's
semantic checks), then through our rules (pinned image = installed Ray, GPUs declared, spot
workers, head with 0 CPUs, no secrets, nothing opened to the internet). Each rule is also
shown to catch a broken config. No cloud credentials, no network, no `ray.init`.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster_rules import (
    IMAGE_REPO,
    comment_problems,
    kuberay_problems,
    pip_pins,
    secret_problems,
    vm_problems,
    walk,
)

ray = pytest.importorskip("ray")

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "cluster"
VM_FILES = sorted(p for p in CLUSTER.glob("*.yaml") if "provider" in yaml.safe_load(p.read_text()))
KUBERAY_FILES = sorted((CLUSTER / "kuberay").glob("*.yaml"))


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def ray_validate(cfg: dict[str, Any]) -> dict[str, Any]:
    """Ray's own checks, as `ray up` runs them; raw schema validation if the private API moved."""
    cfg = copy.deepcopy(cfg)
    try:
        from ray.autoscaler._private.util import prepare_config, validate_config
    except ImportError:  # pragma: no cover - only when Ray reorganises its private modules
        import jsonschema

        jsonschema.validate(cfg, _schema())
        return cfg
    prepared = prepare_config(cfg)
    validate_config(prepared)
    return prepared


def _schema() -> dict[str, Any]:
    import ray.autoscaler

    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


@pytest.fixture(params=VM_FILES, ids=lambda p: p.name)
def vm_file(request) -> Path:
    return request.param


# ----------------------------------------------------------------------------- VM cluster YAMLs


def test_both_clouds_are_covered():
    assert {p.name for p in VM_FILES} >= {"aws-gpu.yaml", "gcp-gpu.yaml"}
    assert {load(p)["provider"]["type"] for p in VM_FILES} >= {"aws", "gcp"}


def test_ray_accepts_the_config(vm_file):
    prepared = ray_validate(load(vm_file))
    # prepare_config merged our setup_commands into both command lists, as `ray up` will.
    assert any("torch==" in c for c in prepared["head_setup_commands"])
    assert any("torch==" in c for c in prepared["worker_setup_commands"])


def test_raw_schema_accepts_the_unprepared_config(vm_file):
    import jsonschema

    jsonschema.validate(load(vm_file), _schema())


def test_installed_ray_is_the_pinned_version():
    assert ray.__version__.startswith("2.60."), "pyproject pins ray==2.60.*"


def test_our_rules_pass(vm_file):
    assert vm_problems(load(vm_file), ray.__version__) == []


def ray_ml_values(tree: Any) -> list[str]:
    """String values (not comments) that name a rayproject/ray-ml image."""
    return [f"{p}: {v}" for p, _, v in walk(tree) if isinstance(v, str) and "ray-ml" in v]


def test_no_secrets_and_no_ray_ml(vm_file):
    assert ray_ml_values(load(vm_file)) == []
    assert secret_problems(load(vm_file)) == []


def test_user_settings_have_comments(vm_file):
    assert comment_problems(vm_file.read_text()) == []


def test_head_start_keeps_dashboard_local_and_exports_mlflow(vm_file):
    prepared = ray_validate(load(vm_file))
    head = " ".join(prepared["head_start_ray_commands"])
    worker = " ".join(prepared["worker_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head and "--dashboard-host=0.0.0.0" not in head
    assert "mlflow server" in head and "--port 5000" in head
    assert "MLFLOW_TRACKING_URI=" in head
    assert 'MLFLOW_TRACKING_URI="http://$RAY_HEAD_IP:5000"' in worker


def test_token_auth_and_storage_settings(vm_file):
    cfg = load(vm_file)
    options = " ".join(cfg["docker"]["run_options"])
    assert "--env RAY_AUTH_MODE=token" in options
    assert cfg["file_mounts"] == {"/home/ray/.ray/auth_token": "~/.ray/auth_token"}
    storage = re.search(r"--env DIRECTSAM_STORAGE=(\S+)", options)
    assert storage and storage.group(1).split("://")[0] in {"s3", "gs"}


def test_pins_agree_across_clouds_and_dockerfile():
    pins = [pip_pins(" ".join(load(p)["setup_commands"])) for p in VM_FILES]
    docker = (CLUSTER / "Dockerfile").read_text()
    docker_pins = pip_pins(docker.replace("\\\n", " "))
    heavy = {"torch", "transformers", "mlflow", "pycocotools", "opencv-python-headless"}
    for p in pins:
        assert heavy | {"scikit-image", "safetensors"} <= set(p)
        assert {k: v for k, v in p.items() if k in docker_pins} == {
            k: v for k, v in docker_pins.items() if k in p
        }
    assert f"ARG RAY_IMAGE={IMAGE_REPO}:{ray.__version__}-py311-gpu" in docker


def test_directsam_install_is_pinned_to_the_release(vm_file):
    import directsam

    cmds = " ".join(load(vm_file)["setup_commands"])
    assert f"/tags/v{directsam.__version__}.tar.gz" in cmds
    assert "--no-deps" in cmds  # the heavy deps are pinned above, not resolved again


# ----------------------------------------------------------------------------- the rules bite


def mutate(path: Path, edit) -> dict[str, Any]:
    cfg = load(path)
    edit(cfg)
    return cfg


def test_ray_rejects_a_typo_key(vm_file):
    import jsonschema

    cfg = load(vm_file)
    cfg["max_wrkers"] = cfg.pop("max_workers")
    with pytest.raises(jsonschema.ValidationError, match="Additional properties"):
        ray_validate(cfg)


def test_ray_rejects_a_typo_inside_a_node_type(vm_file):
    import jsonschema

    cfg = load(vm_file)
    cfg["available_node_types"]["gpu_worker"]["min_wrkers"] = 0
    with pytest.raises(jsonschema.ValidationError):
        ray_validate(cfg)


def test_ray_rejects_min_workers_above_the_global_max(vm_file):
    cfg = load(vm_file)
    cfg["available_node_types"]["cpu_decode"]["min_workers"] = cfg["max_workers"] + 1
    cfg["available_node_types"]["cpu_decode"]["max_workers"] = cfg["max_workers"] + 1
    with pytest.raises(ValueError, match="min_workers"):
        ray_validate(cfg)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda c: c["available_node_types"]["gpu_worker"].update(min_workers=3, max_workers=2),
         "gpu_worker: min_workers 3 > max_workers 2"),
        (lambda c: c["docker"].update(image="rayproject/ray:2.59.0-py311-gpu"),
         "docker.image"),
        (lambda c: c["docker"].update(image="rayproject/ray-ml:2.60.0-py311-gpu"),
         "ray-ml"),
        (lambda c: c["available_node_types"]["gpu_worker"]["resources"].pop("GPU"),
         "gpu_worker: GPU hardware but resources.GPU"),
        (lambda c: c["available_node_types"]["head"].update(resources={"CPU": 4}),
         "head: resources.CPU must be 0"),
        (lambda c: c["available_node_types"]["gpu_worker"].update(min_workers=1),
         "gpu_worker: GPU group must start at min_workers 0"),
        (lambda c: c["setup_commands"].__setitem__(0, "pip install torch transformers"),
         "unpinned"),
    ],
)  # fmt: skip
def test_our_rules_catch_broken_configs(vm_file, edit, expected):
    problems = vm_problems(mutate(vm_file, edit), ray.__version__)
    assert any(expected in p for p in problems), problems


def test_our_rules_catch_on_demand_workers(vm_file):
    def on_demand(c):
        node_config = c["available_node_types"]["cpu_decode"]["node_config"]
        node_config.pop("InstanceMarketOptions", None)
        node_config.pop("scheduling", None)

    assert any(
        "cpu_decode: not spot" in p for p in vm_problems(mutate(vm_file, on_demand), "2.60.0")
    )


def test_cpu_group_is_sized_by_docs_sizing(vm_file):
    """The CPU workers at their maximum feed the GPUs at theirs (docs/SIZING.md arithmetic)."""
    from tests.cluster_rules import SIZING_CORES_PER_GPU, SIZING_HEADROOM

    nodes = load(vm_file)["available_node_types"]
    gpu, cpu = nodes["gpu_worker"], nodes["cpu_decode"]
    gpus = gpu["max_workers"] * gpu["resources"]["GPU"]
    free = cpu["max_workers"] * cpu["resources"]["CPU"] + gpu["max_workers"] * (
        gpu["resources"]["CPU"] - gpu["resources"]["GPU"]
    )
    assert free >= gpus * SIZING_CORES_PER_GPU["label"] * SIZING_HEADROOM
    # ...and not far beyond it: the maximum follows from the arithmetic, one node of slack.
    assert free - cpu["resources"]["CPU"] < gpus * SIZING_CORES_PER_GPU["label"] * SIZING_HEADROOM
    assert set(cpu["resources"]) == {"CPU"}  # the CPU stages ask for CPUs only
    sizing = (REPO / "docs" / "SIZING.md").read_text()
    assert f"`max_workers: {cpu['max_workers']}`" in sizing
    assert f"{SIZING_CORES_PER_GPU['label']} |" in sizing


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda c: c["available_node_types"]["cpu_decode"].update(max_workers=8), "CPU capacity"),
        (lambda c: c["available_node_types"]["gpu_worker"].update(max_workers=12), "CPU capacity"),
        (lambda c: c["available_node_types"]["cpu_decode"]["resources"].update(decode=1),
         "CPU workers declare custom resources ['decode']"),
    ],
)  # fmt: skip
def test_capacity_rules_catch_a_short_cpu_group(vm_file, edit, expected):
    problems = vm_problems(mutate(vm_file, edit), ray.__version__)
    assert any(expected in p for p in problems), problems


def test_our_rules_catch_world_open_ingress():
    cfg = load(CLUSTER / "aws-gpu.yaml")
    cfg["provider"]["security_group"] = {
        "GroupName": "dashboard",
        "IpPermissions": [
            {"FromPort": 8265, "ToPort": 8265, "IpProtocol": "tcp",
             "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
        ],
    }  # fmt: skip
    ray_validate(cfg)  # Ray itself allows it...
    assert any("0.0.0.0/0" in p for p in vm_problems(cfg, ray.__version__))  # ...we do not


def test_secret_scan_catches_keys_and_passwords():
    tree = {
        "provider": {"aws_secret_access_key": "abc"},
        "setup_commands": ["export AWS_ACCESS_KEY_ID=AKIAABCDEFGHIJKLMNOP"],
        "head_start_ray_commands": ["mlflow server --backend-store-uri postgresql://u:pw@db/x"],
        "env": [{"name": "DB_PASSWORD", "value": "hunter2"}],
    }
    found = " | ".join(secret_problems(tree))
    for needle in ("aws_secret_access_key", "AKIA", "postgresql://u:pw@", "DB_PASSWORD"):
        assert needle in found


def test_comment_rule_catches_an_uncommented_setting():
    text = "# the name\ncluster_name: x\nmax_workers: 3\n"
    assert comment_problems(text) == ["line 3: `max_workers` has no comment above it"]


# ----------------------------------------------------------------------------- KubeRay manifests


def kuberay_docs() -> list[dict[str, Any]]:
    docs = []
    for path in KUBERAY_FILES:
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_kuberay_manifests_are_present():
    kinds = [d["kind"] for d in kuberay_docs()]
    assert "RayCluster" in kinds and "RayJob" in kinds


@pytest.mark.parametrize("name", ["raycluster.yaml", "rayjob-pretrain.yaml"])
def test_kuberay_structure(name):
    path = CLUSTER / "kuberay" / name
    (doc,) = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert kuberay_problems(doc, ray.__version__, kuberay_docs()) == []
    assert secret_problems(doc) == []
    assert comment_problems(path.read_text()) == []
    assert ray_ml_values(doc) == []


def test_rayjob_runs_stage_1_and_cleans_up():
    job = load(CLUSTER / "kuberay" / "rayjob-pretrain.yaml")["spec"]
    assert job["entrypoint"] == "python ray_jobs/pretrain.py --config configs/pretrain.yaml"
    assert job["shutdownAfterJobFinishes"] is True and job["ttlSecondsAfterFinished"] > 0
    runtime_env = yaml.safe_load(job["runtimeEnvYAML"])
    assert set(runtime_env) <= {"working_dir", "env_vars"}  # no pip: deps are in the image
    assert re.match(r"^(https|s3|gs)://.+\.zip$", runtime_env["working_dir"])


def _job_spec(doc):
    return doc["spec"]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda s: s.update(rayVersion="2.59.0"), "rayVersion 2.59.0"),
        (lambda s: s["workerGroupSpecs"][1].update(minReplicas=3, maxReplicas=2), "minReplicas"),
        (lambda s: s["workerGroupSpecs"][1].update(replicas=9), "replicas 9"),
        (lambda s: s["autoscalerOptions"].update(version="v1"), "autoscaler v2"),
        (lambda s: s.pop("authOptions"), "authOptions.mode"),
        (lambda s: s["headGroupSpec"]["rayStartParams"].update({"num-cpus": "4"}), "num-cpus"),
        (lambda s: s["headGroupSpec"].update(serviceType="LoadBalancer"), "serviceType"),
        (lambda s: s["workerGroupSpecs"][1]["template"]["spec"].pop("tolerations"),
         "toleration"),
        (lambda s: [r.pop("nvidia.com/gpu") for r in s["workerGroupSpecs"][1]["template"][
            "spec"]["containers"][0]["resources"].values()], "no GPU group"),
    ],
)  # fmt: skip
def test_kuberay_rules_catch_broken_manifests(edit, expected):
    doc = load(CLUSTER / "kuberay" / "raycluster.yaml")
    edit(_job_spec(doc))
    problems = kuberay_problems(doc, ray.__version__, kuberay_docs())
    assert any(expected in p for p in problems), problems


def test_kuberay_capacity_rules():
    cluster = load(CLUSTER / "kuberay" / "raycluster.yaml")
    cluster["spec"]["workerGroupSpecs"][0].update(maxReplicas=8)
    problems = kuberay_problems(cluster, ray.__version__, kuberay_docs())
    assert any(p.startswith("CPU capacity: 376 CPUs for tasks at 8 GPUs") for p in problems)
    cluster["spec"]["workerGroupSpecs"][0]["rayStartParams"] = {"resources": '{"decode": 1}'}
    problems = kuberay_problems(cluster, ray.__version__, kuberay_docs())
    assert any("cpu-decode: CPU group declares custom resources" in p for p in problems)
    # The stage-1 RayJob is sized by the training row: its GPU pods' spare CPUs are enough.
    job = load(CLUSTER / "kuberay" / "rayjob-pretrain.yaml")
    job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0].update(maxReplicas=0)
    assert kuberay_problems(job, ray.__version__, kuberay_docs()) == []


def test_kuberay_rules_catch_a_rayjob_that_never_shuts_down():
    doc = load(CLUSTER / "kuberay" / "rayjob-pretrain.yaml")
    doc["spec"]["shutdownAfterJobFinishes"] = False
    del doc["spec"]["ttlSecondsAfterFinished"]
    problems = " | ".join(kuberay_problems(doc, ray.__version__, kuberay_docs()))
    assert "shutdownAfterJobFinishes" in problems and "ttlSecondsAfterFinished" in problems


# ----------------------------------------------------------------------------- runtime env + upload


def test_runtime_env_is_valid_and_installs_nothing():
    from ray.runtime_env import RuntimeEnv

    cfg = load(CLUSTER / "runtime_env.yaml")
    assert set(cfg) <= RuntimeEnv.known_fields
    RuntimeEnv(**cfg)  # Ray's own type checks (excludes: list[str], env_vars: dict[str, str])
    # Heavy deps come from the image; the code comes with --working-dir (set on the CLI).
    assert not {"pip", "conda", "uv", "working_dir", "py_modules"} & set(cfg)
    # Per-node settings must not be overridden by the job.
    assert not {"MLFLOW_TRACKING_URI", "DIRECTSAM_STORAGE"} & set(cfg["env_vars"])


# What a checkout may hold: (path, uploaded?)
TREE = [
    ("directsam/__init__.py", True),
    ("directsam/data/decode.py", True),  # a package named like the local data folder
    ("directsam/labeling/writer.py", True),
    ("ray_jobs/pretrain.py", True),
    ("configs/pretrain.yaml", True),
    ("cluster/runtime_env.yaml", True),
    ("tests/data/test_decode.py", True),
    ("pyproject.toml", True),
    (".venv/lib/python3.11/site-packages/torch/__init__.py", False),
    (".git/objects/ab/cdef", False),
    ("data/sa1b/sa_1.jpg", False),
    ("outputs/labels/part-0.parquet", False),
    ("demo_out/x.png", False),
    ("benchmarks/out/run.json", False),
    ("mlflow.db", False),
    ("mlartifacts/1/a/model.safetensors", False),
    ("mlruns/0/meta.yaml", False),
    ("shards/sa_000000.tar", False),
    ("directsam/__pycache__/config.cpython-311.pyc", False),
    ("directsam.egg-info/PKG-INFO", False),
]


def _uploaded(tmp_path: Path, gitignore: str | None) -> set[str]:
    """Zip a synthetic checkout the way `ray job submit --working-dir` does; return its names."""
    import zipfile

    from ray._private.runtime_env.packaging import create_package

    try:
        from ray._private.ray_constants import get_runtime_env_default_excludes

        defaults = get_runtime_env_default_excludes()
    except ImportError:  # pragma: no cover - older Ray had no default excludes
        defaults = []
    root = tmp_path / "checkout"
    for rel, _ in TREE:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x")
    if gitignore is not None:
        (root / ".gitignore").write_text(gitignore)
    excludes = defaults + load(CLUSTER / "runtime_env.yaml")["excludes"]
    target = tmp_path / "pkg.zip"
    create_package(str(root), target, include_gitignore=gitignore is not None, excludes=excludes)
    with zipfile.ZipFile(target) as zf:
        return {n for n in zf.namelist() if not n.endswith("/")}


def test_upload_excludes_environments_data_outputs_and_stores(tmp_path):
    names = _uploaded(tmp_path, gitignore=None)
    assert {rel for rel, keep in TREE if keep} <= names
    assert not names & {rel for rel, keep in TREE if not keep}


def test_repository_gitignore_keeps_the_package_in_the_upload(tmp_path):
    # Ray also applies .gitignore to the upload: an unanchored "data/" there would drop
    # directsam/data/ and tests/data/ from every job (and from git). Anchor it as "/data/".
    names = _uploaded(tmp_path, gitignore=(REPO / ".gitignore").read_text())
    missing = sorted({rel for rel, keep in TREE if keep} - names)
    assert missing == [], f"dropped from the job upload by .gitignore: {missing}"
