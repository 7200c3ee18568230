"""Dataset registries (``configs/datasets.yaml``, ``configs/eval_datasets.yaml``): a name ->
the source keys of that dataset.

``--dataset NAME`` naming an entry fills every source key of :data:`REGISTRY_KEYS` that the job
was not given (by its YAML, a flag or ``--set``); given keys win. That is the one rule for
``label``, ``pretrain``, ``self-train``, ``evaluate`` and ``sweep``: :func:`fill_from_registry`
runs on the config as given, before the dataclasses are built (``load_config``'s ``prepare``
hook), because only there is "not given" different from "given the default value".
Entries ship with empty paths for users to fill in.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from directsam.config import ConfigError
from directsam.data.decode import LABEL_MAP_MODES
from directsam.data.sources.spec import SOURCE_TYPES, SPLITS

REGISTRY_KEYS = ("type", "input", "annotations", "labels", "mode", "split")
"""Entry keys that are :class:`~directsam.data.sources.spec.SourceSpec` fields of the same name."""
ENTRY_KEYS = (*REGISTRY_KEYS, "size", "notes")


def repo_path(path: str) -> Path:
    """``path`` as given when it exists or is absolute, else relative to the repository."""
    p = Path(path)
    if p.is_file() or p.is_absolute():
        return p
    # Relative to the repository when the job runs from another working directory.
    return Path(__file__).resolve().parents[3] / path


def validate_entry(name: str, entry: Any) -> list[str]:
    """Problems of one registry entry (empty list when valid)."""
    if not isinstance(entry, dict):
        return [f"{name}: entry must be a mapping"]
    out = [f"{name}: unknown key {k!r}" for k in entry if k not in ENTRY_KEYS]
    if entry.get("type") not in SOURCE_TYPES:
        out.append(f"{name}: type must be one of {', '.join(SOURCE_TYPES)}")
    if entry.get("mode", "single_channel") not in LABEL_MAP_MODES:
        out.append(f"{name}: mode must be one of {', '.join(LABEL_MAP_MODES)}")
    if entry.get("split", "all") not in SPLITS:
        out.append(f"{name}: split must be one of {', '.join(SPLITS)}")
    size = entry.get("size")
    if size is not None and (not isinstance(size, int) or size < 1):
        out.append(f"{name}: size must be a positive integer")
    for key in ("input", "annotations", "labels"):
        if entry.get(key) is not None and not isinstance(entry[key], str):
            out.append(f"{name}: {key} must be a string path")
    return out


def load_registry(path: str, flag: str = "--registry") -> dict[str, dict[str, Any]]:
    """Load and validate a registry.

    Raises:
        ConfigError: missing file or invalid entries (all listed), naming ``flag``.
    """
    import yaml

    p = repo_path(path)
    if not p.is_file():
        raise ConfigError(f"{flag}: file not found: {path}")
    doc = yaml.safe_load(p.read_text()) or {}
    entries = doc.get("datasets", {}) if isinstance(doc, dict) else None
    if not isinstance(entries, dict):
        raise ConfigError(f"{flag} {path}: expected a top-level 'datasets' mapping")
    problems = [m for name, entry in entries.items() for m in validate_entry(str(name), entry)]
    if problems:
        raise ConfigError(f"{flag} {path}:\n  - " + "\n  - ".join(problems))
    return {str(k): dict(v) for k, v in entries.items()}


def fill_from_registry(
    raw: dict[str, Any], flag_names: Mapping[str, str], default_registry: str
) -> None:
    """Fill ``raw["source"]`` (a job config as given, before it is built) from the registry
    entry named by its ``dataset``; keys that were given win.

    Args:
        raw: the job's config tree from its YAML, flags and ``--set`` (changed in place).
        flag_names: config key -> flag, for messages (``source.input`` -> ``--data``).
        default_registry: the job's registry when ``source.registry`` is not given; a missing
            default registry has no entries (a registry named by the user must exist).

    Raises:
        ConfigError: an invalid registry, or an entry without an input path and none given.
    """
    section = raw.get("source")
    if not isinstance(section, dict) or section.get("dataset") in (None, ""):
        return  # a misspelt section is reported by the loader, naming the key
    name = str(section["dataset"])
    path = section.get("registry") or default_registry
    if not section.get("registry") and not repo_path(path).is_file():
        return
    flag = flag_names.get("source.registry", "--set source.registry")
    entry = load_registry(str(path), flag).get(name)
    if entry is None:
        return  # a plain dataset name
    for key in REGISTRY_KEYS:
        if section.get(key) in (None, "") and entry.get(key) not in (None, ""):
            section[key] = entry[key]
    if not section.get("input"):
        dataset_flag = flag_names.get("source.dataset", "--set source.dataset")
        input_flag = flag_names.get("source.input", "--set source.input")
        raise ConfigError(
            f"{dataset_flag} {name}: the registry {path} has no input path for it yet; "
            f"fill in its 'input' there or pass {input_flag}"
        )
