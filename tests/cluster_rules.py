"""Our rules for cluster/ configs, on top of Ray's own validation (used by test_cluster_configs).

Each function returns a list of human-readable problems (empty = fine), so a test can show
both that the shipped files pass and that a broken copy is caught with a precise message.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from typing import Any

import yaml

IMAGE_REPO = "rayproject/ray"

# Keys a user is expected to change: each must have a comment line right above it.
USER_KEYS = frozenset(
    """cluster_name max_workers min_workers upscaling_speed idle_timeout_minutes image
    container_name pull_before_run region availability_zone project_id cache_stopped_nodes
    ssh_user resources InstanceType ImageId machineType sourceImage InstanceMarketOptions
    scheduling IamInstanceProfile serviceAccounts VolumeSize diskSizeGb head_node_type
    file_mounts initialization_commands setup_commands head_setup_commands
    worker_setup_commands head_start_ray_commands worker_start_ray_commands rayVersion
    enableInTreeAutoscaling autoscalerOptions version upscalingMode idleTimeoutSeconds
    authOptions serviceType num-cpus dashboard-host replicas minReplicas maxReplicas
    tolerations entrypoint runtimeEnvYAML submissionMode shutdownAfterJobFinishes
    ttlSecondsAfterFinished activeDeadlineSeconds backoffLimit""".split()
)

_SECRET_KEY = re.compile(
    r"password|passwd|secret|token|credential|api[_-]?key|access[_-]?key", re.I
)
_SECRET_VALUE = [
    (re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"), "an AWS access key id"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a private key"),
    (re.compile(r"\bghp_[A-Za-z0-9]{20,}"), "a GitHub token"),
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9-]+"), "a Slack token"),
    (re.compile(r"://[^/\s:@]+:[^/\s@]+@"), "credentials in a URL"),
    (re.compile(r"(password|passwd|secret)\s*[=:]\s*\S+", re.I), "a password"),
]


def walk(tree: Any, path: str = "") -> Iterator[tuple[str, Any, Any]]:
    """Yield (path, key, value) for every mapping entry and (path, None, item) for list items."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            sub = f"{path}.{key}" if path else str(key)
            yield sub, key, value
            yield from walk(value, sub)
    elif isinstance(tree, list):
        for i, item in enumerate(tree):
            sub = f"{path}[{i}]"
            yield sub, None, item
            yield from walk(item, sub)


def secret_problems(tree: Any) -> list[str]:
    """Secret-looking keys with values, K8s env vars with literal secret values, key patterns."""
    problems = []
    for path, key, value in walk(tree):
        scalar = value is not None and not isinstance(value, dict | list)
        # Keys that are paths (file_mounts: {"/home/ray/.ray/auth_token": ...}) name files.
        if key is not None and scalar and str(value) != "" and not str(key).startswith(("/", "~")):
            if _SECRET_KEY.search(str(key)):
                problems.append(f"{path}: {key} holds a literal value")
        if isinstance(value, dict) and "name" in value and "value" in value:
            if _SECRET_KEY.search(str(value["name"])):
                problems.append(
                    f"{path}: env {value['name']} holds a literal value (use valueFrom)"
                )
        if isinstance(value, str):
            for pattern, what in _SECRET_VALUE:
                if pattern.search(value):
                    problems.append(f"{path}: looks like {what}: {value[:60]!r}")
    return problems


def comment_problems(text: str) -> list[str]:
    """Every line setting a USER_KEYS key must follow a comment line (YAML aliases excepted)."""
    problems = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^\s*(?:-\s+)?([A-Za-z_][\w.\-]*):(?:\s+(.*))?$", line)
        if not m or m.group(1) not in USER_KEYS or (m.group(2) or "").startswith("*"):
            continue
        if i == 0 or not lines[i - 1].strip().startswith("#"):
            problems.append(f"line {i + 1}: `{m.group(1)}` has no comment above it")
    return problems


def pip_pins(text: str) -> dict[str, str]:
    """``{"torch": "2.13.0", ...}`` from ``name==version`` requirements in a command."""
    return {
        m.group(1).lower(): m.group(2)
        for m in re.finditer(r"([A-Za-z0-9_.\-]+)==([0-9][^\s\"'\\]*)", text)
    }


def unpinned(command: str) -> list[str]:
    """Requirements of a ``pip install`` command without ``==`` or a tagged URL."""
    tokens = shlex.split(command)
    if "install" not in tokens:
        return []
    out, skip = [], False
    for tok in tokens[tokens.index("install") + 1 :]:
        if skip:
            skip = False
        elif tok in ("-r", "-c", "--requirement", "--constraint"):
            skip = True
        elif not tok.startswith("-") and "==" not in tok and not re.search(r" @ \S+/v\d", tok):
            out.append(tok)
    return out


def _has_gpu_hardware(provider: str, node_config: dict[str, Any]) -> bool:
    if provider == "aws":
        return bool(re.match(r"^[gp]\d", node_config.get("InstanceType", "")))
    if provider == "gcp":
        machine = node_config.get("machineType", "")
        return bool(node_config.get("guestAccelerators")) or machine.startswith(
            ("a2-", "a3-", "a4-", "g2-")
        )
    return False


def _is_spot(provider: str, node_config: dict[str, Any]) -> bool:
    if provider == "aws":
        return node_config.get("InstanceMarketOptions", {}).get("MarketType") == "spot"
    scheduling = node_config.get("scheduling") or {}
    return isinstance(scheduling, dict) and (
        scheduling.get("provisioningModel") == "SPOT" or scheduling.get("preemptible") is True
    )


def vm_problems(cfg: dict[str, Any], ray_version: str) -> list[str]:
    """Our rules for a Ray cluster-launcher YAML (see cluster/README.md)."""
    problems: list[str] = []
    provider = cfg["provider"]["type"]
    docker = cfg.get("docker") or {}
    images = {
        f"docker.{k}": docker[k] for k in ("image", "head_image", "worker_image") if k in docker
    }
    for name, nt in cfg["available_node_types"].items():
        if "worker_image" in (nt.get("docker") or {}):
            images[f"{name}.docker.worker_image"] = nt["docker"]["worker_image"]
    if "docker.image" not in images:
        problems.append("docker.image: missing (pin the Ray image)")
    for where, image in images.items():
        if "ray-ml" in image:
            problems.append(f"{where}: {image} is a ray-ml image (none published after 2.49)")
        elif image != f"{IMAGE_REPO}:{ray_version}-py311-gpu":
            problems.append(f"{where}: {image} != {IMAGE_REPO}:{ray_version}-py311-gpu")

    head = cfg["head_node_type"]
    max_total = cfg["max_workers"]
    gpu_types, cpu_types = [], []
    for name, nt in cfg["available_node_types"].items():
        node_config, resources = nt["node_config"], nt.get("resources") or {}
        if isinstance(node_config.get("scheduling"), list):
            problems.append(f"{name}: scheduling must be a mapping (GCE API), not a list")
        if name == head:
            if resources.get("CPU") != 0:
                problems.append(
                    f"head: resources.CPU must be 0 (no tasks on the head), got {resources.get('CPU')}"
                )
            if _is_spot(provider, node_config):
                problems.append("head: must be on-demand, not spot")
            continue
        lo, hi = nt.get("min_workers", 0), nt.get("max_workers", max_total)
        if lo > hi:
            problems.append(f"{name}: min_workers {lo} > max_workers {hi}")
        if hi > max_total:
            problems.append(f"{name}: max_workers {hi} > cluster max_workers {max_total}")
        if not _is_spot(provider, node_config):
            problems.append(f"{name}: not spot/preemptible")
        gpu_hw, gpus = _has_gpu_hardware(provider, node_config), resources.get("GPU", 0)
        if gpu_hw and gpus < 1:
            problems.append(f"{name}: GPU hardware but resources.GPU is {gpus} (declare it)")
        if gpus >= 1 and not gpu_hw:
            problems.append(f"{name}: declares GPU {gpus} on a machine without GPUs")
        if "CPU" not in resources:
            problems.append(f"{name}: declare resources.CPU explicitly")
        if gpu_hw or gpus:
            gpu_types.append(name)
            if lo != 0:
                problems.append(f"{name}: GPU group must start at min_workers 0, got {lo}")
            sched = node_config.get("scheduling") or {}
            if (
                provider == "gcp"
                and isinstance(sched, dict)
                and sched.get("onHostMaintenance") != "TERMINATE"
            ):
                problems.append(f"{name}: GPU VMs need scheduling.onHostMaintenance TERMINATE")
        else:
            cpu_types.append(name)
    if not gpu_types:
        problems.append("no GPU worker type")
    if not cpu_types:
        problems.append("no CPU worker type")

    for path, _, value in walk(cfg):
        if isinstance(value, str) and ("0.0.0.0/0" in value or value.strip() == "::/0"):
            problems.append(f"{path}: opens {value} to the internet")
    for cmd in cfg.get("setup_commands", []):
        for req in unpinned(cmd):
            problems.append(f"setup_commands: unpinned requirement {req!r}")
    return problems + vm_capacity_problems(cfg)


# docs/SIZING.md: the CPU capacity a cluster shape must have for its GPUs at their maximum.
# Cores per GPU measured by benchmarks/cpu_budget.py (benchmarks/results/cpu_budget.md, run 2)
# at the issue-16 anchor rates, CPU decode path: "label" = labeling B0 @ 1024 at 850 img/s (the
# most CPU per GPU of the jobs there; general-purpose clusters), "train" = training B0 @ 1024
# at 121 img/s (the stage-1 RayJob). SIZING_HEADROOM covers what the benchmark leaves out (Ray
# Data task and transfer overhead, object-store reads). One CPU per GPU is the model actor's /
# Ray Train worker's; the rest of a GPU node runs CPU tasks too.
SIZING_CORES_PER_GPU = {"label": 49.8, "train": 6.7}
SIZING_HEADROOM = 1.5
CPUS_PER_GPU_PROCESS = 1


def capacity_problems(groups: list[tuple[str, int, float, float]], job: str = "label") -> list[str]:
    """(name, max nodes, CPUs per node, GPUs per node) of the worker groups -> shortfalls."""
    gpus = sum(n * g for _, n, _, g in groups)
    free = sum(n * (c - g * CPUS_PER_GPU_PROCESS) for _, n, c, g in groups)
    need = gpus * SIZING_CORES_PER_GPU[job] * SIZING_HEADROOM
    if gpus and free < need:
        return [
            f"CPU capacity: {free:g} CPUs for tasks at {gpus:g} GPUs, docs/SIZING.md needs "
            f"{need:g} ({SIZING_CORES_PER_GPU[job]} cores/GPU for {job} x {SIZING_HEADROOM}); "
            "raise the CPU group's maximum"
        ]
    return []


def vm_capacity_problems(cfg: dict[str, Any]) -> list[str]:
    """CPU groups schedulable by CPU alone, and enough of them for the GPUs (docs/SIZING.md)."""
    problems, groups = [], []
    for name, nt in cfg["available_node_types"].items():
        if name == cfg["head_node_type"]:
            continue
        res = nt.get("resources") or {}
        extra = sorted(set(res) - {"CPU", "GPU", "memory", "object_store_memory"})
        if not res.get("GPU") and extra:
            problems.append(f"{name}: CPU workers declare custom resources {extra}; the CPU "
                            "stages ask for CPUs only, so nothing would need them")  # fmt: skip
        groups.append((name, nt.get("max_workers", cfg["max_workers"]), res.get("CPU", 0),
                       res.get("GPU", 0)))  # fmt: skip
    return problems + capacity_problems(groups)


def _cpus(quantity: Any) -> float:
    """A Kubernetes CPU quantity ("32", "500m") in CPUs."""
    text = str(quantity)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def kuberay_capacity_problems(spec: dict[str, Any], job: str = "label") -> list[str]:
    """As :func:`vm_capacity_problems`, for a RayCluster spec (CPUs from container limits)."""
    problems, groups = [], []
    for g in spec.get("workerGroupSpecs", []):
        limits = (g["template"]["spec"]["containers"][0].get("resources") or {}).get("limits", {})
        gpus = float(limits.get("nvidia.com/gpu", 0))
        params = g.get("rayStartParams") or {}
        if not gpus and ({"resources", "num-gpus"} & set(params)):
            problems.append(f"{g['groupName']}: CPU group declares custom resources or GPUs in "
                            "rayStartParams; the CPU stages ask for CPUs only")  # fmt: skip
        groups.append((g["groupName"], g.get("maxReplicas", 0), _cpus(limits.get("cpu", 0)), gpus))
    return problems + capacity_problems(groups, job)


def _containers(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(group name, group spec, container) for the head and every worker group."""
    for c in spec["headGroupSpec"]["template"]["spec"]["containers"]:
        yield "head", spec["headGroupSpec"], c
    for g in spec.get("workerGroupSpecs", []):
        for c in g["template"]["spec"]["containers"]:
            yield g["groupName"], g, c


def kuberay_problems(
    doc: dict[str, Any], ray_version: str, all_docs: list[dict[str, Any]]
) -> list[str]:
    """Structural rules for a RayCluster or RayJob (no CRD schema ships with the ray wheel)."""
    problems: list[str] = []
    if doc.get("apiVersion") != "ray.io/v1":
        problems.append(f"apiVersion {doc.get('apiVersion')} != ray.io/v1")
    kind = doc.get("kind")
    if kind == "RayJob":
        job = doc["spec"]
        if job.get("shutdownAfterJobFinishes") is not True:
            problems.append("RayJob: shutdownAfterJobFinishes must be true")
        if (
            not isinstance(job.get("ttlSecondsAfterFinished"), int)
            or job["ttlSecondsAfterFinished"] <= 0
        ):
            problems.append("RayJob: ttlSecondsAfterFinished must be a positive integer")
        if not str(job.get("entrypoint", "")).startswith("python ray_jobs/"):
            problems.append("RayJob: entrypoint must run a ray_jobs/ script")
        runtime_env = yaml.safe_load(job.get("runtimeEnvYAML") or "{}") or {}
        if {"pip", "conda", "uv"} & set(runtime_env):
            problems.append("RayJob: runtimeEnvYAML installs packages; they belong in the image")
        spec = job["rayClusterSpec"]
    elif kind == "RayCluster":
        spec = doc["spec"]
    else:
        return problems + [f"kind {kind} is neither RayCluster nor RayJob"]

    if spec.get("rayVersion") != ray_version:
        problems.append(f"rayVersion {spec.get('rayVersion')} != installed ray {ray_version}")
    if (
        spec.get("enableInTreeAutoscaling") is not True
        or (spec.get("autoscalerOptions") or {}).get("version") != "v2"
    ):
        problems.append("autoscaling must be on, with autoscaler v2")
    if (spec.get("authOptions") or {}).get("mode") != "token":
        problems.append("authOptions.mode must be token")
    head = spec["headGroupSpec"]
    if str(head.get("rayStartParams", {}).get("num-cpus")) != "0":
        problems.append('head: rayStartParams num-cpus must be "0"')
    if head.get("serviceType", "ClusterIP") != "ClusterIP":
        problems.append(
            f"head: serviceType {head['serviceType']} exposes the cluster; use ClusterIP"
        )

    gpu_groups, cpu_groups = set(), set()
    for name, group, container in _containers(spec):
        image = container["image"]
        tag = image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else ""
        if "ray-ml" in image:
            problems.append(f"{name}: ray-ml image {image}")
        if not (tag == spec.get("rayVersion") or tag.startswith(f"{spec.get('rayVersion')}-")):
            problems.append(f"{name}: image tag {tag!r} does not start with rayVersion")
        res = container.get("resources") or {}
        limit, request = (res.get(k, {}).get("nvidia.com/gpu") for k in ("limits", "requests"))
        if name == "head":
            continue
        if request is not None and limit is None:
            problems.append(f"{name}: nvidia.com/gpu requested without a limit")
        if limit is None:
            cpu_groups.add(name)
            continue
        gpu_groups.add(name)
        if int(limit) < 1 or (request is not None and int(request) != int(limit)):
            problems.append(f"{name}: nvidia.com/gpu limit {limit} / request {request}")
        if not any(
            t.get("key") == "nvidia.com/gpu"
            for t in group["template"]["spec"].get("tolerations", [])
        ):
            problems.append(f"{name}: no nvidia.com/gpu toleration")
    for group in spec.get("workerGroupSpecs", []):
        lo, n, hi = group.get("minReplicas", 0), group.get("replicas", 0), group.get("maxReplicas")
        if hi is None or not lo <= n <= hi:
            problems.append(
                f"{group['groupName']}: minReplicas {lo} <= replicas {n} <= maxReplicas {hi} violated"
            )
        if group["groupName"] in gpu_groups and lo != 0:
            problems.append(f"{group['groupName']}: GPU group must start at minReplicas 0")
    if not gpu_groups:
        problems.append("no GPU group (nvidia.com/gpu limit)")
    if not cpu_groups:
        problems.append("no CPU worker group")
    training = kind == "RayJob" and "train" in str(doc["spec"].get("entrypoint", ""))
    problems += kuberay_capacity_problems(spec, "train" if training else "label")

    claims = {
        d["metadata"]["name"]: d for d in all_docs if d.get("kind") == "PersistentVolumeClaim"
    }
    services = {d["metadata"]["name"] for d in all_docs if d.get("kind") == "Service"}
    for path, key, value in walk(spec):
        if key == "claimName":
            claim = claims.get(value)
            if claim is None or "ReadWriteMany" not in claim["spec"]["accessModes"]:
                problems.append(
                    f"{path}: claim {value} is not a ReadWriteMany claim of cluster/kuberay"
                )
        if isinstance(value, dict) and value.get("name") == "MLFLOW_TRACKING_URI":
            host = re.sub(r"^https?://([^:/]+).*$", r"\1", value.get("value", ""))
            if host not in services:
                problems.append(f"{path}: MLflow host {host} is not a Service of cluster/kuberay")
    return problems
