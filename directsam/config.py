"""Typed job configuration: dataclasses <- YAML file <- named flags <- ``--set key.sub=value``.

Every job (label, pretrain, self-train, evaluate, sweep) has a dataclass tree; this module turns
a YAML preset plus command-line overrides into one, checks types and values, and reports every
problem at once with the flag a user would change (``--threshold``, or ``--set model.threshold``).

Precedence, lowest first: dataclass defaults, the ``--config`` file, named shorthand flags
(``--data``, ``--max-steps`` ...), then repeated ``--set`` overrides.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

Prepare = Callable[[dict[str, Any], Mapping[str, str]], None]
"""A hook on the config tree as given (YAML + flags + ``--set``), before the dataclasses are
built: ``prepare(raw, flag_names)`` may fill keys in place (the dataset registry does)."""


class ConfigError(ValueError):
    """A configuration or command-line mistake; the message names the flag or key to fix."""


# ----------------------------------------------------------------------------- argparse glue


def add_config_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--config FILE`` and repeated ``--set key.sub=value`` to a parser."""
    parser.add_argument("--config", default=None, help="YAML preset (see configs/)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set train.lr=5e-5 (repeatable; YAML values)",
    )


def config_from_args(
    cls: type[T],
    args: argparse.Namespace,
    shorthands: Mapping[str, str] | None = None,
    prepare: Prepare | None = None,
) -> T:
    """Build ``cls`` from ``args.config``, the shorthand flags and ``args.overrides``.

    Args:
        cls: the job's top-level config dataclass.
        args: parsed namespace; shorthand flags must default to ``None`` (meaning "not given").
        shorthands: ``{"argparse_dest": "dotted.config.key"}``, e.g. ``{"max_steps": "train.max_steps"}``.
        prepare: see :func:`load_config`.
    """
    shorthands = dict(shorthands or {})
    values: dict[str, Any] = {}
    flag_names: dict[str, str] = {}
    for dest, key in shorthands.items():
        flag_names[key] = "--" + dest.replace("_", "-")
        value = getattr(args, dest, None)
        if value is not None:
            values[key] = value
    return load_config(
        cls,
        path=getattr(args, "config", None),
        overrides=list(getattr(args, "overrides", []) or []),
        values=values,
        flag_names=flag_names,
        prepare=prepare,
    )


# ----------------------------------------------------------------------------- loading


def load_config(
    cls: type[T],
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
    values: Mapping[str, Any] | None = None,
    flag_names: Mapping[str, str] | None = None,
    prepare: Prepare | None = None,
) -> T:
    """Load a config dataclass from YAML, typed values and ``key=value`` override strings.

    A key that ``cls.RENAMED_KEYS`` (``{old dotted key: new dotted key}``) lists is refused with
    a message naming its new key, so an old YAML fails fast instead of being half read.
    ``prepare(raw, flag_names)`` runs on the merged tree before it is built.

    Raises:
        ConfigError: unknown or renamed keys, values of the wrong type, or failed validation;
            all problems are listed in one message, each naming its flag.
    """
    import yaml

    flag_names = dict(flag_names or {})
    renamed = getattr(cls, "RENAMED_KEYS", {})
    raw: dict[str, Any] = {}
    problems: list[str] = []
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"--config: file not found: {p}")
        try:
            loaded = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"--config: {p} is not valid YAML: {err}") from err
        if not isinstance(loaded, dict):
            raise ConfigError(f"--config: {p} must hold a mapping at the top level")
        raw = loaded
    # Before flags merge into it: `--input` would silently replace an old `source: coco`.
    problems += _renamed(raw, renamed, flag_names)
    for key, value in (values or {}).items():
        _set_dotted(raw, key, value)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set train.lr=1e-4")
        key, text = item.split("=", 1)
        key = key.strip()
        flag_names.setdefault(key, f"--set {key}")
        try:
            value = yaml.safe_load(text) if text.strip() != "" else ""
        except yaml.YAMLError:
            value = text
        _set_dotted(raw, key, value)

    problems += _renamed(raw, renamed, flag_names)
    if prepare is not None and not problems:
        prepare(raw, flag_names)
    cfg = _build(cls, raw, "", problems, flag_names)
    # Validate what could be built too, so one run reports every problem.
    problems.extend(_validate(cfg, "", flag_names))
    if problems:
        where = f" (config file {path})" if path else ""
        raise ConfigError("invalid configuration" + where + ":\n  - " + "\n  - ".join(problems))
    return cfg  # type: ignore[return-value]


def from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
    """Rebuild a config dataclass from ``to_dict`` output (crossing a Ray boundary)."""
    problems: list[str] = []
    cfg = _build(cls, dict(data), "", problems, {})
    if problems:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(problems))
    return cfg  # type: ignore[return-value]


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict of a config dataclass (JSON/YAML serialisable)."""
    return dataclasses.asdict(cfg)


def flatten(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten a config (dataclass or dict) to ``{"a.b": scalar}``; lists become JSON strings.

    MLflow rejects nested params, so this is what goes to ``log_params``.
    """
    data = to_dict(cfg) if dataclasses.is_dataclass(cfg) else dict(cfg)
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        elif isinstance(value, list | tuple):
            out[name] = json.dumps(list(value))
        else:
            out[name] = value
    return out


def config_hash(
    cfg: Any,
    keys: Iterable[str] | None = None,
    length: int = 10,
    names: Mapping[str, str] | None = None,
) -> str:
    """Stable short hash of a config, or of the given dotted keys only.

    Used for default run names and submission ids: the same shape-defining settings give the
    same hash whatever the order of keys in the YAML. ``names`` hashes keys under other names
    (``{key: name}``), so that renaming a key does not change the hashes of existing runs.
    """
    flat = flatten(cfg)
    if keys is not None:
        wanted = list(keys)
        flat = {
            k: v for k, v in flat.items() if any(k == w or k.startswith(w + ".") for w in wanted)
        }
    if names:
        flat = {names.get(k, k): v for k, v in flat.items()}
    text = json.dumps(flat, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def dump_yaml(cfg: Any) -> str:
    """The config as YAML (for logs, checkpoints and ``--print-config``)."""
    import yaml

    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


# ----------------------------------------------------------------------------- internals


def _set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def _flag(key: str, flag_names: Mapping[str, str]) -> str:
    return flag_names.get(key, f"--set {key}")


def _renamed(
    raw: dict[str, Any], renamed: Mapping[str, str], flag_names: Mapping[str, str]
) -> list[str]:
    """Take the keys of ``raw`` that were renamed out of it; one problem naming the new key each.

    An old key that is also the first part of its new one (``source`` -> ``source.type``) is
    old only when it holds a plain value, not a section.
    """
    problems = []
    for old, new in renamed.items():
        *parents, leaf = old.split(".")
        node: Any = raw
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or leaf not in node or isinstance(node[leaf], Mapping):
            continue
        value = node.pop(leaf)
        problems.append(
            f"{_flag(old, flag_names)}: the key {old!r} is now {new!r} (one `source` section "
            f"for every job, docs/CONFIG.md); write {new}: {json.dumps(value, default=str)}"
        )
    return problems


def _build(
    cls: type,
    raw: Any,
    prefix: str,
    problems: list[str],
    flag_names: Mapping[str, str],
    base: Any = None,
) -> Any:
    """``cls`` from ``raw``; keys not in ``raw`` keep ``base``'s values (the parent's default for
    this section, e.g. self-train's 1024 px ``data``), else the class defaults."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        problems.append(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {raw!r}")
        return None
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    for key in raw:
        if key not in names:
            full = prefix + str(key)
            close = [
                n for n in names if n.replace("_", "") == str(key).replace("_", "").replace("-", "")
            ]
            hint = f" (did you mean {prefix}{close[0]}?)" if close else ""
            problems.append(
                f"{_flag(full, flag_names)}: unknown key {full!r}{hint}; "
                f"known keys: {', '.join(sorted(prefix + n for n in names))}"
            )
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.init or f.name not in raw:
            continue
        full = prefix + f.name
        tp = hints[f.name]
        value = raw[f.name]
        if dataclasses.is_dataclass(tp):
            default = _default_of(f, base)
            kwargs[f.name] = _build(tp, value, full + ".", problems, flag_names, default)
            continue
        try:
            kwargs[f.name] = _coerce(value, tp)
        except (TypeError, ValueError) as err:
            problems.append(f"{_flag(full, flag_names)}: {err}")
    try:
        return dataclasses.replace(base, **kwargs) if base is not None else cls(**kwargs)
    except (TypeError, ValueError) as err:
        problems.append(f"{prefix.rstrip('.') or cls.__name__}: {err}")
        return None


def _default_of(f: dataclasses.Field, base: Any) -> Any:
    """The default of section ``f``: ``base``'s own when building inside a base, else the
    field's default (a job class's ``default_factory`` gives its per-job section defaults)."""
    if base is not None:
        return getattr(base, f.name)
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None if f.default is dataclasses.MISSING else f.default


def _coerce(value: Any, tp: Any) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        choices = [a for a in args if a is not type(None)]
        if (
            value == ""
            and len(choices) < len(args)
            and all(typing.get_origin(a) is typing.Literal for a in choices)
        ):
            return None  # an empty optional choice is unset (`source.type: ""` in a preset)
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg)
            except (TypeError, ValueError) as err:
                errors.append(str(err))
        raise ValueError("; ".join(errors))
    if origin is typing.Literal:
        if value not in args:
            raise ValueError(f"expected one of {list(args)}, got {value!r}")
        return value
    if origin in (list, tuple, Sequence):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise ValueError(f"expected a list, got {value!r}")
        inner = args[0] if args else Any
        items = [_coerce(v, inner) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ValueError(f"expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ValueError(f"expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError(f"expected an integer, got {value!r}")
        try:
            return int(value)
        except ValueError as err:
            raise ValueError(f"expected an integer, got {value!r}") from err
    if tp is float:
        if isinstance(value, bool):
            raise ValueError(f"expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError) as err:
            raise ValueError(f"expected a number, got {value!r}") from err
    if tp is str:
        if isinstance(value, dict | list):
            raise ValueError(f"expected a string, got {value!r}")
        return str(value)
    return value


def _validate(cfg: Any, prefix: str, flag_names: Mapping[str, str]) -> list[str]:
    """Collect ``validate()`` problems of every nested dataclass.

    A config class may define ``validate(self) -> list[tuple[str, str]]`` returning
    ``(field_name, message)`` pairs; they are reported with the field's flag.
    """
    problems: list[str] = []
    if cfg is None:
        return problems
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            problems.extend(_validate(value, prefix + f.name + ".", flag_names))
    check = getattr(cfg, "validate", None)
    if callable(check):
        for name, message in check():
            problems.append(f"{_flag(prefix + name, flag_names)}: {message}")
    return problems
