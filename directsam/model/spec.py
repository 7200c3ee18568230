"""Checkpoint specs: what a ``--checkpoint`` / ``--init`` string names, where its files are, which
weights it holds (``checkpoint_sha``) and what its ``directsam.json`` says.

A spec is one of

- ``scratch:SIZE[:SEED]``: random init of a MiT size (``b0``..``b5``, or ``tiny`` for tests);
- ``models:/NAME/VERSION`` (also ``models:/NAME@ALIAS``, ``models:/<model id>``): an MLflow
  registered model, downloaded to a local checkpoint directory (MLflow imported only here);
- a local directory written by ``save_pretrained`` / ``save_checkpoint``;
- a Hugging Face hub id ``owner/name``.

This module is the one home of those rules; :mod:`directsam.model.build` loads what a spec
names, and the command-line preflight checks (:func:`check_spec`) use the same rules.
Nothing here imports ``directsam.delivery``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

from directsam.atomic import atomic_dir
from directsam.model.checkpoint import META_FILE, read_meta

# The settings of a checkpoint whose directsam.json does not name them (a hub model, scratch:*):
# the released model's. Every command, the token API and the MLflow model fall back to these.
DEFAULT_THRESHOLD = 0.5
DEFAULT_RESOLUTION = 1024

SCRATCH_PREFIX = "scratch:"
MODELS_PREFIX = "models:/"
SAFE_WEIGHTS = "model.safetensors"
SAFE_WEIGHTS_INDEX = "model.safetensors.index.json"
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")
CONFIG_FILE = "config.json"
CHECKPOINT_ARTIFACT = "checkpoint"  # the checkpoint folder inside a logged MLflow model

SpecKind = Literal["scratch", "models", "dir", "hub"]

# Mix Transformer sizes from the SegFormer paper (Xie et al. 2021, Table 6) as published in the
# nvidia/mit-b* configs. Heads, sr ratios, patch sizes, strides and MLP ratios are shared.
_MIT_WIDE = [64, 128, 320, 512]
SCRATCH_SIZES: dict[str, dict[str, Any]] = {
    "b0": {"hidden_sizes": [32, 64, 160, 256], "depths": [2, 2, 2, 2], "decoder_hidden_size": 256},
    "b1": {"hidden_sizes": _MIT_WIDE, "depths": [2, 2, 2, 2], "decoder_hidden_size": 256},
    "b2": {"hidden_sizes": _MIT_WIDE, "depths": [3, 4, 6, 3], "decoder_hidden_size": 768},
    "b3": {"hidden_sizes": _MIT_WIDE, "depths": [3, 4, 18, 3], "decoder_hidden_size": 768},
    "b4": {"hidden_sizes": _MIT_WIDE, "depths": [3, 8, 27, 3], "decoder_hidden_size": 768},
    "b5": {"hidden_sizes": _MIT_WIDE, "depths": [3, 6, 40, 3], "decoder_hidden_size": 768},
    # Test-only: runs a 64 px forward pass in milliseconds on one CPU core.
    "tiny": {
        "hidden_sizes": [8, 16, 32, 64],
        "depths": [1, 1, 1, 1],
        "decoder_hidden_size": 32,
        "num_attention_heads": [1, 2, 4, 8],
    },
}


class SpecError(ValueError):
    """A checkpoint spec that names nothing loadable (the message says why, not which flag)."""


# ----------------------------------------------------------------------------- parsing


def parse_scratch_spec(spec: str) -> tuple[str, int]:
    """``"scratch:b0"`` -> ``("b0", 0)``; ``"scratch:b5:7"`` -> ``("b5", 7)``.

    Raises:
        ValueError: unknown size or a seed that is not a non-negative integer.
    """
    parts = spec[len(SCRATCH_PREFIX) :].split(":")
    size = parts[0]
    if size not in SCRATCH_SIZES or len(parts) > 2:
        raise SpecError(
            f"bad scratch spec {spec!r}: expected scratch:SIZE or scratch:SIZE:SEED with SIZE one "
            f"of {', '.join(SCRATCH_SIZES)}"
        )
    seed = 0
    if len(parts) == 2:
        if not parts[1].isdigit():
            raise SpecError(f"bad scratch spec {spec!r}: seed {parts[1]!r} is not an integer >= 0")
        seed = int(parts[1])
    return size, seed


def is_local_path(spec: str) -> bool:
    """A spec that names a local folder: an existing directory, or written as a path (``.``,
    ``/``, ``~``) even when it does not exist (yet)."""
    return spec.startswith((".", "/", "~")) or Path(spec).expanduser().is_dir()


def is_hub_id(spec: str) -> bool:
    """The hub-id rule: ``owner/name`` (one slash), not written as a path, no scheme."""
    return (
        spec.count("/") == 1
        and not spec.startswith((".", "/", "~"))
        and ":" not in spec
        and all(spec.split("/"))
    )


def spec_kind(spec: str) -> SpecKind:
    """Which kind of spec ``spec`` is; an existing local directory wins over a hub id.

    Raises:
        SpecError: an existing file, or a string of no known form (``a/b/c``, a missing path).
    """
    if spec.startswith(SCRATCH_PREFIX):
        return "scratch"
    if spec.startswith(MODELS_PREFIX):
        return "models"
    path = Path(spec).expanduser()
    if path.is_dir():
        return "dir"
    if path.exists():
        raise SpecError("is a file; a checkpoint is a folder (config.json + weights)")
    if is_hub_id(spec):
        return "hub"
    raise SpecError(
        "no such checkpoint folder, and not a hub id (owner/name), scratch:SIZE or "
        "models:/NAME/VERSION"
    )


# ----------------------------------------------------------------------------- models:/


def _cache_root() -> Path:
    return Path(os.environ.get("DIRECTSAM_CACHE") or Path.home() / ".cache" / "directsam")


def find_checkpoint_dir(root: Path) -> Path:
    """The checkpoint directory inside a downloaded MLflow model (or artifact) folder."""
    for candidate in [root / "artifacts" / CHECKPOINT_ARTIFACT, root]:
        if (candidate / SAFE_WEIGHTS).is_file():
            return candidate
    found = sorted(p.parent for p in root.rglob(SAFE_WEIGHTS))
    if not found:
        raise FileNotFoundError(f"no {SAFE_WEIGHTS} in the MLflow model at {root}")
    return found[0]


def resolve_model_uri(spec: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """``models:/NAME/VERSION`` (or ``models:/NAME@ALIAS``, ``models:/<model id>``) -> a local
    checkpoint directory, downloaded through MLflow from the registry at
    ``MLFLOW_REGISTRY_URI`` / ``MLFLOW_TRACKING_URI`` (else MLflow's default).

    Numbered versions are immutable and cached under ``$DIRECTSAM_CACHE`` (default
    ``~/.cache/directsam``)/``mlflow-models``; aliases and ``latest`` are downloaded each time.
    """
    import mlflow

    registry = mlflow.get_registry_uri()
    key = hashlib.sha256(f"{registry}\n{spec}".encode()).hexdigest()[:16]
    base = Path(cache_dir) if cache_dir else _cache_root() / "mlflow-models"
    target = base / key
    parts = spec[len(MODELS_PREFIX) :].split("/")
    immutable = len(parts) == 2 and parts[1].isdigit()
    if immutable and (target / ".complete").is_file():
        return find_checkpoint_dir(target)
    with atomic_dir(target) as tmp:
        mlflow.artifacts.download_artifacts(artifact_uri=spec, dst_path=str(tmp))
        (tmp / ".complete").write_text(spec + "\n")
    return find_checkpoint_dir(target)


def resolve_spec(spec: str) -> str:
    """``models:/...`` -> its local checkpoint directory (see :func:`resolve_model_uri`); every
    other spec unchanged."""
    if not spec.startswith(MODELS_PREFIX):
        return spec
    return str(resolve_model_uri(spec))


# ----------------------------------------------------------------------------- weights id


def _sha256_files(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for file in files:
        with open(file, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def weights_in_dir(directory: Path) -> tuple[list[Path], list[Path]]:
    """(safetensors files, pickle files) of the top-level weight names in ``directory``."""
    safe = [directory / n for n in (SAFE_WEIGHTS, SAFE_WEIGHTS_INDEX) if (directory / n).is_file()]
    pickle = [directory / n for n in PICKLE_WEIGHTS if (directory / n).is_file()]
    return safe, pickle


def _weight_files(directory: Path) -> list[Path]:
    """The weight files that define a checkpoint directory's tensors, in a stable order."""
    if (directory / SAFE_WEIGHTS).is_file():
        return [directory / SAFE_WEIGHTS]
    shards = sorted(directory.glob("model-*-of-*.safetensors"))
    if shards:
        return shards
    return [directory / n for n in PICKLE_WEIGHTS[:1] if (directory / n).is_file()] + sorted(
        directory.glob("pytorch_model-*-of-*.bin")
    )


def _hub_weight_files(repo_id: str) -> list[Path]:
    from huggingface_hub import try_to_load_from_cache

    for name in (SAFE_WEIGHTS, PICKLE_WEIGHTS[0]):
        cached = try_to_load_from_cache(repo_id, name)
        if isinstance(cached, str):
            return [Path(cached)]
    # A sharded hub checkpoint: the shards sit beside the cached index file.
    index = try_to_load_from_cache(repo_id, SAFE_WEIGHTS_INDEX)
    if isinstance(index, str):
        return sorted(Path(index).parent.glob("model-*-of-*.safetensors"))
    return []


def tensors_sha(model: Any) -> str:
    """``tensors:<16 hex>``: sha256 over a model's state dict (names, dtypes, shapes, bytes)."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.view(-1).view(torch.uint8).numpy().tobytes())
    return "tensors:" + digest.hexdigest()[:16]


def checkpoint_sha(spec: str, source: str | os.PathLike[str] | Any | None = None) -> str:
    """Identify the weights behind ``spec`` (the shard/MLflow ``checkpoint_sha`` value).

    Args:
        spec: the checkpoint spec as given to :func:`directsam.model.load_model`.
        source: optional directory holding the weights (defaults to ``spec`` when that is a
            directory, else the hub cache), or the loaded model, used only when no weight file
            can be found (e.g. a hub checkpoint served from a converted-safetensors branch).

    Returns:
        ``scratch:<size>:<seed>`` for scratch specs; else the first 16 hex digits of the
        sha256 of ``model.safetensors`` (all shards, in order, when sharded); else, given a
        model, :func:`tensors_sha` of it.

    Raises:
        FileNotFoundError: no weight file can be found and no model was given.
    """
    if spec.startswith(SCRATCH_PREFIX):
        size, seed = parse_scratch_spec(spec)
        return f"scratch:{size}:{seed}"
    spec = resolve_spec(spec)
    directory: Path | None = None
    if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        directory = Path(source)
    elif Path(spec).expanduser().is_dir():
        directory = Path(spec).expanduser()
    files = _weight_files(directory) if directory is not None else _hub_weight_files(spec)
    if files:
        return _sha256_files(files)
    if hasattr(source, "state_dict"):
        return tensors_sha(source)
    raise FileNotFoundError(f"no weight file found for checkpoint {spec!r}")


# ----------------------------------------------------------------------------- metadata


def read_checkpoint_meta(spec: str) -> dict[str, Any]:
    """The ``directsam.json`` behind any spec: a directory's, a ``models:/`` model's, or a cached
    hub checkpoint's; ``{}`` for ``scratch:`` specs and checkpoints without one."""
    if spec.startswith(SCRATCH_PREFIX):
        return {}
    spec = resolve_spec(spec)
    if Path(spec).expanduser().is_dir():
        return read_meta(Path(spec).expanduser())
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(spec, META_FILE)
    return json.loads(Path(cached).read_text()) if isinstance(cached, str) else {}


# ----------------------------------------------------------------------------- checks


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def check_spec(spec: str, *, allow_pickle: bool = False) -> SpecKind:
    """Check, without loading weights, that ``spec`` names a loadable checkpoint.

    Local folders need ``config.json`` and safetensors weights (or pickle weights with
    ``allow_pickle``); ``scratch:`` sizes must exist; ``models:/`` names must be registered
    (the registry is contacted: :func:`check_registered_model`); hub ids are checked only
    against the local cache when ``HF_HUB_OFFLINE`` is set (otherwise the hub answers at load).

    Returns:
        The spec's kind.

    Raises:
        SpecError: why ``spec`` names nothing loadable (one line, naming neither flag nor spec).
    """
    if not spec:
        raise SpecError("no checkpoint given")
    kind = spec_kind(spec)
    if kind == "scratch":
        try:
            parse_scratch_spec(spec)
        except SpecError:
            raise SpecError(
                f"unknown scratch spec: expected scratch:SIZE or scratch:SIZE:SEED with SIZE one "
                f"of {', '.join(SCRATCH_SIZES)}"
            ) from None
    elif kind == "models":
        check_registered_model(spec)
    elif kind == "dir":
        directory = Path(spec).expanduser()
        safe, pickle = weights_in_dir(directory)
        shards = sorted(directory.glob("model-*-of-*.safetensors"))
        if not (directory / CONFIG_FILE).is_file():
            raise SpecError(f"the folder has no {CONFIG_FILE}: not a checkpoint folder")
        if not safe and not shards:
            if not pickle:
                raise SpecError(f"the folder has no weights ({SAFE_WEIGHTS})")
            if not allow_pickle:
                raise SpecError(
                    "the folder has only pickle weights (pytorch_model.bin), which can run code "
                    "when loaded; convert it to safetensors, or allow pickle if you trust it"
                )
    elif kind == "hub" and _hub_offline():
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(spec, CONFIG_FILE), str):
            raise SpecError(
                "no such folder, and as a hub id it is not in the local Hugging Face cache "
                "(HF_HUB_OFFLINE is set)"
            )
    return kind


def check_registered_model(spec: str) -> None:
    """Check that a ``models:/`` spec names a registered model version, alias or logged model.

    The registry is MLflow's (``MLFLOW_REGISTRY_URI`` / ``MLFLOW_TRACKING_URI``, else
    ``sqlite:///mlflow.db`` in the working directory). A sqlite registry that does not exist is
    reported, never created; an ``http(s)://`` registry is asked with short timeouts.

    Raises:
        SpecError: malformed spec, missing or unreachable registry, or nothing registered.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    from directsam.tracking.client import bounded_http, first_line

    rest = spec[len(MODELS_PREFIX) :]
    name, sep, version = rest.partition("/")
    alias = None
    if not sep and "@" in rest:
        name, _, alias = rest.partition("@")
    if not name or (sep and not version) or (alias is not None and not alias) or "/" in version:
        raise SpecError(
            "bad model URI: expected models:/NAME/VERSION, models:/NAME@ALIAS or models:/<model id>"
        )
    registry = mlflow.get_registry_uri()
    where = f"the MLflow registry {registry} (MLFLOW_REGISTRY_URI / MLFLOW_TRACKING_URI)"
    if registry.startswith("sqlite:///") and not Path(registry[len("sqlite:///") :]).is_file():
        raise SpecError(f"{where} does not exist")
    from mlflow.tracking import MlflowClient

    try:
        with bounded_http():
            client = MlflowClient(registry_uri=registry)
            if alias is not None:
                client.get_model_version_by_alias(name, alias)
            elif not sep:
                client.get_logged_model(name)  # models:/<model id>
            elif version == "latest":
                if not client.search_model_versions(f"name = '{name}'", max_results=1):
                    raise SpecError(f"no version of {name!r} is registered in {where}")
            else:
                client.get_model_version(name, version)
    except MlflowException as err:
        code = getattr(err, "error_code", "")
        if code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"):
            raise SpecError(f"not registered in {where}") from None
        raise SpecError(f"{where} cannot be read ({first_line(err)})") from None
