"""Config dataclasses -> the Markdown configuration reference (``docs/CONFIG.md``).

Every key of every ``configs/*.yaml`` job preset is a field of one dataclass tree; this module
walks those trees (type, the job's default, the field's attribute docstring) so the reference
is generated from the code, never written by hand::

    python -m directsam.config_reference > docs/CONFIG.md
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import sys
import textwrap
from collections.abc import Iterator
from functools import cache
from typing import Any

#: (preset files, "module:Class", the job that reads it).
PRESETS: tuple[tuple[str, str, str], ...] = (
    ("configs/pretrain.yaml, configs/smoke/pretrain.yaml",
     "directsam.training.config:PretrainConfig", "directsam pretrain / ray_jobs/pretrain.py"),
    ("configs/pseudo_label.yaml, configs/smoke/pseudo_label.yaml",
     "directsam.labeling.config:LabelConfig", "directsam label / ray_jobs/pseudo_label.py"),
    ("configs/self_train.yaml, configs/smoke/self_train.yaml",
     "directsam.training.config:SelfTrainConfig", "directsam self-train / ray_jobs/self_train.py"),
    ("configs/evaluate.yaml", "directsam.evaluation.config:EvalConfig",
     "directsam evaluate / ray_jobs/evaluate.py"),
    ("configs/sweep.yaml, configs/smoke/sweep.yaml", "directsam.evaluation.config:SweepConfig",
     "directsam sweep / ray_jobs/sweep.py"),
)  # fmt: skip

HEADER = """# Configuration reference

Generated from the config dataclasses by `python -m directsam.config_reference > docs/CONFIG.md`
(`tests/ops/test_config_reference.py` fails when this file is out of date). Do not edit by hand.

Every job reads one YAML file (`--config`), then its named flags, then `--set key.sub=value`
overrides, in that order; keys not given keep the defaults below. Unknown keys and invalid
values are refused with a message naming the flag. `--print-config` (training jobs) prints the
resolved YAML. The dataset registries `configs/datasets.yaml` and `configs/eval_datasets.yaml`
are not job configs: their entry keys are documented at the top of each file.
"""


def load_class(path: str) -> type:
    """``"pkg.module:Class"`` -> the class."""
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


@cache
def _field_docs(cls: type) -> dict[str, tuple[str, str]]:
    """``{field: (annotation source, attribute docstring)}`` declared in ``cls`` itself."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}
    body = tree.body[0].body  # type: ignore[attr-defined]
    out: dict[str, tuple[str, str]] = {}
    for node, after in zip(body, [*body[1:], None]):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            doc = ""
            if (
                isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                doc = inspect.cleandoc(after.value.value)
            out[node.target.id] = (ast.unparse(node.annotation), doc)
    return out


def expand_aliases(annotation: str, module: str) -> str:
    """``SourceType | None`` -> ``Literal["sa1b", ...] | None``: names of ``Literal`` aliases in
    ``module`` spelled out, so the reference lists the choices."""
    import json
    import re
    import typing

    namespace = vars(sys.modules[module]) if module in sys.modules else {}

    def spell(match: re.Match[str]) -> str:
        value = namespace.get(match.group(0))
        if typing.get_origin(value) is not typing.Literal:
            return match.group(0)
        return f"Literal[{', '.join(json.dumps(a) for a in typing.get_args(value))}]"

    return re.sub(r"\b[A-Za-z_]\w*\b", spell, annotation)


def field_doc(cls: type, name: str) -> tuple[str, str]:
    """Annotation source and docstring of field ``name``, from the nearest class that has one."""
    annotation = ""
    for klass in cls.__mro__:
        if dataclasses.is_dataclass(klass) and name in _field_docs(klass):
            ann, doc = _field_docs(klass)[name]
            annotation = annotation or expand_aliases(ann, klass.__module__)
            if doc:
                return annotation, doc
    return annotation, ""


def walk(instance: Any, prefix: str = "") -> Iterator[tuple[str, str, Any, str]]:
    """``(dotted key, type, default, description)`` of every leaf field, depth first."""
    cls = type(instance)
    for f in dataclasses.fields(cls):
        value = getattr(instance, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            yield from walk(value, f"{prefix}{f.name}.")
            continue
        annotation, doc = field_doc(cls, f.name)
        yield f"{prefix}{f.name}", annotation, value, doc


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _default(value: Any) -> str:
    import yaml

    text = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
    text = text.removesuffix("\n...").removesuffix("...").strip()
    return f"`{text}`" if text else "`''`"


def class_markdown(cls: type) -> str:
    """One table: key | type | default | meaning."""
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for key, annotation, value, doc in walk(cls()):
        lines.append(
            f"| `{key}` | `{_cell(annotation)}` | {_cell(_default(value))} | {_cell(doc)} |"
        )
    return "\n".join(lines)


def reference_markdown() -> str:
    """The whole ``docs/CONFIG.md``."""
    parts = [HEADER]
    parts.append("| preset | config class | job |\n|---|---|---|")
    for files, path, job in PRESETS:
        parts[-1] += f"\n| {files} | `{path.replace(':', '.')}` | `{job}` |"
    for files, path, job in PRESETS:
        cls = load_class(path)
        doc = inspect.cleandoc(cls.__doc__ or "").split("\n\n")[0]
        parts.append(
            f"## `{cls.__name__}`: {files.split(',')[0]}\n\n"
            f"{_cell(doc)} Read by `{job}`.\n\n{class_markdown(cls)}"
        )
    return "\n\n".join(parts) + "\n"


def main() -> int:
    sys.stdout.write(reference_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
