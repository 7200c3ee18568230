"""The dataset registry (``configs/datasets.yaml``): name -> source type, paths, split, mode.

Entries ship with empty paths for users to fill in; ``directsam label --dataset NAME`` then
needs no other source flag.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from directsam.config import ConfigError
from directsam.data.sources.listing import SOURCE_TYPES, SPLITS
from directsam.labeling.config import LABEL_MODES

ENTRY_KEYS = ("type", "input", "annotations", "labels", "mode", "split", "size", "notes")


def repo_path(path: str) -> Path:
    """``path`` as given when it exists or is absolute, else relative to the repository."""
    p = Path(path)
    if p.is_file() or p.is_absolute():
        return p
    # Relative to the repository when the job runs from another working directory.
    return Path(__file__).resolve().parents[2] / path


def validate_entry(name: str, entry: Any) -> list[str]:
    """Problems of one registry entry (empty list when valid)."""
    if not isinstance(entry, dict):
        return [f"{name}: entry must be a mapping"]
    out = [f"{name}: unknown key {k!r}" for k in entry if k not in ENTRY_KEYS]
    if entry.get("type") not in SOURCE_TYPES:
        out.append(f"{name}: type must be one of {', '.join(SOURCE_TYPES)}")
    if entry.get("mode", "single_channel") not in LABEL_MODES:
        out.append(f"{name}: mode must be one of {', '.join(LABEL_MODES)}")
    if entry.get("split", "all") not in SPLITS:
        out.append(f"{name}: split must be one of {', '.join(SPLITS)}")
    size = entry.get("size")
    if size is not None and (not isinstance(size, int) or size < 1):
        out.append(f"{name}: size must be a positive integer")
    for key in ("input", "annotations", "labels"):
        if entry.get(key) is not None and not isinstance(entry[key], str):
            out.append(f"{name}: {key} must be a string path")
    return out


def load_registry(path: str = "configs/datasets.yaml") -> dict[str, dict[str, Any]]:
    """Load and validate the registry.

    Raises:
        ConfigError: missing file or invalid entries (all listed).
    """
    import yaml

    p = repo_path(path)
    if not p.is_file():
        raise ConfigError(f"--registry: file not found: {path}")
    doc = yaml.safe_load(p.read_text()) or {}
    entries = doc.get("datasets", {}) if isinstance(doc, dict) else None
    if not isinstance(entries, dict):
        raise ConfigError(f"--registry {path}: expected a top-level 'datasets' mapping")
    problems = [m for name, entry in entries.items() for m in validate_entry(str(name), entry)]
    if problems:
        raise ConfigError(f"--registry {path}:\n  - " + "\n  - ".join(problems))
    return {str(k): dict(v) for k, v in entries.items()}
