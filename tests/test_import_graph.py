"""The package's import graph: layers from the ground up, no upward imports, no cycles.

``LAYERS`` below is the one statement of what may import what (docs/ARCHITECTURE.md "Layers"
mirrors it, and ``test_architecture_doc_mirrors_layers`` keeps the two equal). The graph is
read with ``ast`` from the source files; nothing is imported.

Which imports count:
- Module-level imports (including those under ``if``/``try`` and ``if TYPE_CHECKING``) and
  function-level (lazy) imports both count as dependencies. Lazy imports keep
  ``import directsam.x`` cheap, but a lazy import that goes UPWARD is still a layering
  violation: the lower module cannot be used, tested or moved without the upper one.
- Cycles are looked for over the same graph, lazy edges included. A cycle of module-level
  imports is an import-time loop (a half-initialised module); one closed by a lazy import does
  not fail at import time but still ties the modules into one knot, which is what issue 17
  asked to break (``labeling/layout.py`` <-> ``labeling/writer.py`` was such a loop).
- ``importlib.import_module("...")`` strings (the lazy ``directsam.delivery`` exports) are
  invisible here; they live in a facade. The ``directsam`` command table
  (``directsam/cli/__init__.py``) imports its command modules by name, so it is in the graph.
- The root ``directsam/__init__.py`` holds ``__version__``, which any module may import; its
  lazy ``__getattr__`` re-exports (``directsam.tokenize``) are the public facade and are left
  out of the graph. A module-level import in the root would import the package into itself
  and is refused.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "directsam"

# From the ground up. A module belongs to the component with the longest prefix of its dotted
# name. It may import its own component and any component of a LOWER layer; components of one
# layer are peers and may not import each other.
LAYERS: tuple[tuple[str, Mapping[str, tuple[str, ...]]], ...] = (
    (
        "foundation",
        {
            "schema": ("directsam.schema",),
            "config": ("directsam.config",),
            "atomic": ("directsam.atomic",),  # write_atomic, atomic_dir: every layer writes
        },
    ),
    (
        "primitives and services",
        {
            "data": ("directsam.data",),  # decode, rle, sa1b, coco, boundary, targets, sample
            "metrics": ("directsam.metrics",),
            "tracking": ("directsam.tracking",),
            "raycluster": ("directsam.raycluster",),
        },
    ),
    (
        "sources and model",
        # data.sources.shards is the labeled-shard store (layout, merged readers, counts).
        {"sources": ("directsam.data.sources",), "model": ("directsam.model",)},
    ),
    ("checks", {"preflight": ("directsam.preflight",)}),
    ("inference", {"inference": ("directsam.inference",)}),
    (
        "token API and model packaging",
        {
            "packaging": (
                "directsam.delivery.tokens",
                "directsam.delivery.pyfunc",
                "directsam.delivery.registry",
            )
        },
    ),
    (
        "stages",
        {
            "labeling": ("directsam.labeling",),
            "training": ("directsam.training",),
            "evaluation": ("directsam.evaluation",),  # evaluate, sweep (Tune), compare, report
            "fetch": ("directsam.fetch",),
        },
    ),
    ("delivery", {"delivery": ("directsam.delivery",)}),  # segment job, hub and ONNX export
    (
        "entry points",
        {
            "apps": (
                "directsam.cli",  # the command wing: one module per command, shared flags
                "directsam.demo",
                "directsam.config_reference",
            )
        },
    ),
)

# Edges that break the rules today (issue 17). This list must shrink to empty: the test also
# fails when a listed edge no longer exists or no longer breaks a rule, so delete entries as
# the code moves. Never add one. The comment says the move each needs.
KNOWN_VIOLATIONS: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Edge:
    """One import statement from ``source`` (module) of ``target`` (module or package)."""

    source: str
    target: str
    path: str  # relative to the repository
    line: int
    lazy: bool  # inside a function body

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" + (", lazy" if self.lazy else "")
        return f"{self.source} -> {self.target} ({where})"


def package_modules(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> source file, for every ``.py`` under ``root/package``."""
    modules = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


class _Imports(ast.NodeVisitor):
    def __init__(self) -> None:
        self.depth = 0
        self.found: list[tuple[ast.Import | ast.ImportFrom, bool]] = []

    def _function(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_Import(self, node: ast.Import) -> None:
        self.found.append((node, self.depth > 0))

    visit_ImportFrom = visit_Import  # type: ignore[assignment]


def import_edges(root: Path, package: str) -> list[Edge]:
    """Every import of one of the package's own modules, one edge per imported module."""
    modules = package_modules(root, package)

    def owner(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    edges = []
    for module, path in modules.items():
        here = module if path.name == "__init__.py" else module.rpartition(".")[0]
        visitor = _Imports()
        visitor.visit(ast.parse(path.read_text(), str(path)))
        for node, lazy in visitor.found:
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:  # relative: climb from this module's package
                    up = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                # `from pkg import sub` imports the submodule when there is one.
                subs = [f"{base}.{alias.name}" for alias in node.names]
                names = [sub if sub in modules else base for sub in subs]
            for name in names:
                target = owner(name) if name.split(".")[0] == package else None
                if target is None or target == module:
                    continue
                if module == package and lazy:
                    continue  # the root's lazy public facade (see the module docstring)
                edge = Edge(module, target, path.relative_to(root).as_posix(), node.lineno, lazy)
                if edge not in edges:  # `from m import a, b` is one edge
                    edges.append(edge)
    return edges


def component_of(module: str, layers=LAYERS) -> tuple[int, str] | None:
    """(layer index, component) of the longest matching prefix, or None when unplaced."""
    best = None
    for index, (_, components) in enumerate(layers):
        for component, prefixes in components.items():
            for prefix in prefixes:
                if module == prefix or module.startswith(prefix + "."):
                    if best is None or len(prefix) > best[0]:
                        best = (len(prefix), index, component)
    return None if best is None else best[1:]


def breaks_layers(edge: Edge, package: str = PACKAGE, layers=LAYERS) -> bool:
    """True when ``edge`` goes up a layer or sideways to a peer component."""
    if edge.target == package:
        return edge.source == package  # anyone may read __version__; the root imports nothing
    src, dst = component_of(edge.source, layers), component_of(edge.target, layers)
    if src is None or dst is None:
        return False  # reported by the placement check
    return dst[0] > src[0] or (dst[0] == src[0] and dst[1] != src[1])


def cycles(edges: Iterable[Edge]) -> list[list[Edge]]:
    """One shortest loop (its edges, one per module pair) per strongly connected group."""
    edges = list(edges)
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.source, set()).add(e.target)
        graph.setdefault(e.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(v: str) -> None:  # Tarjan; the graph has ~100 nodes, recursion is fine
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    first: dict[tuple[str, str], Edge] = {}
    for e in edges:
        first.setdefault((e.source, e.target), e)
    loops = []
    for group in groups:
        # Breadth-first from the group's first module back to itself: its shortest loop.
        start = min(group)
        parent: dict[str, str] = {}
        todo = [start]
        while start not in parent:
            v = todo.pop(0)
            for w in sorted(graph[v] & group):
                if w not in parent:
                    parent[w] = v
                    todo.append(w)
        loop, w = [], start
        while True:
            loop.append(first[parent[w], w])
            w = parent[w]
            if w == start:
                break
        loops.append(loop[::-1])
    return loops


def reaches(edges: Iterable[Edge], start: str, goal: str) -> bool:
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.source, set()).add(e.target)
    seen, todo = {start}, [start]
    while todo:
        for w in graph.get(todo.pop(), ()):
            if w == goal:
                return True
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return False


def _lines(edges: Iterable[Edge]) -> str:
    return "\n  " + "\n  ".join(str(e) for e in edges)


@pytest.fixture(scope="module")
def edges() -> list[Edge]:
    return import_edges(REPO, PACKAGE)


def test_every_module_has_a_layer():
    modules = package_modules(REPO, PACKAGE)
    unplaced = sorted(m for m in modules if m != PACKAGE and component_of(m) is None)
    assert not unplaced, f"add these modules to LAYERS in {__file__}: {unplaced}"
    prefixes = [p for _, comps in LAYERS for ps in comps.values() for p in ps]
    unused = [p for p in prefixes if not any(m == p or m.startswith(p + ".") for m in modules)]
    assert not unused, f"LAYERS names modules that do not exist: {unused}"


def test_no_upward_or_sideways_imports(edges):
    bad = [e for e in edges if breaks_layers(e) and (e.source, e.target) not in KNOWN_VIOLATIONS]
    assert not bad, (
        "imports that go up a layer or across to a peer (see LAYERS / docs/ARCHITECTURE.md):"
        + _lines(bad)
    )


def test_no_import_cycles(edges):
    kept = [e for e in edges if (e.source, e.target) not in KNOWN_VIOLATIONS]
    found = cycles(kept)
    assert not found, "import cycles (lazy imports included):" + "".join(
        "\n loop:" + _lines(loop) for loop in found
    )


def test_known_violations_only_shrink(edges):
    present = {(e.source, e.target) for e in edges}
    stale = []
    for source, target in KNOWN_VIOLATIONS:
        listed = [e for e in edges if (e.source, e.target) == (source, target)]
        still_bad = listed and (
            any(breaks_layers(e) for e in listed) or reaches(edges, target, source)
        )
        if (source, target) not in present or not still_bad:
            stale.append(f"{source} -> {target}")
    assert not stale, "delete these fixed entries from KNOWN_VIOLATIONS: " + ", ".join(stale)


def test_architecture_doc_mirrors_layers():
    doc = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    section = doc.split("## Layers", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].isdigit():
            rows[int(cells[0])] = (cells[1], sorted(re.findall(r"`(directsam[\w.]*)`", cells[2])))
    expected = {
        i: (name, sorted(p for ps in comps.values() for p in ps))
        for i, (name, comps) in enumerate(LAYERS)
    }
    assert rows == expected, "docs/ARCHITECTURE.md '## Layers' table differs from LAYERS"


# ---------------------------------------------------------------- the checker itself

TOY_LAYERS = (("low", {"low": ("toy.low",)}), ("high", {"a": ("toy.a",), "b": ("toy.b",)}))


def _toy(tmp_path: Path, files: dict[str, str]) -> list[Edge]:
    for name, text in {"__init__.py": "", **files}.items():
        (tmp_path / "toy" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "toy" / name).write_text(text)
    return import_edges(tmp_path, "toy")


def test_checker_finds_upward_sideways_and_cyclic_imports(tmp_path):
    edges = _toy(
        tmp_path,
        {
            "low.py": "def f():\n    from toy.a import x\n",  # upward, lazy
            "a.py": "from toy import b\nfrom . import low\nx = 1\n",  # sideways; down
            "b.py": "import toy.low\n",
            "c/__init__.py": "from ..c import d\n",
            "c/d.py": "from toy.c import e\n",
            "c/e.py": "def g():\n    import toy.c.d\n",  # closes d <-> e lazily
        },
    )
    assert {str(e) for e in edges} == {
        "toy.low -> toy.a (toy/low.py:2, lazy)",
        "toy.a -> toy.b (toy/a.py:1)",
        "toy.a -> toy.low (toy/a.py:2)",
        "toy.b -> toy.low (toy/b.py:1)",
        "toy.c -> toy.c.d (toy/c/__init__.py:1)",
        "toy.c.d -> toy.c.e (toy/c/d.py:1)",
        "toy.c.e -> toy.c.d (toy/c/e.py:2, lazy)",
    }
    bad = sorted(str(e) for e in edges if breaks_layers(e, "toy", TOY_LAYERS))
    assert bad == [
        "toy.a -> toy.b (toy/a.py:1)",
        "toy.low -> toy.a (toy/low.py:2, lazy)",
    ]
    assert sorted([str(e) for e in loop] for loop in cycles(edges)) == [
        ["toy.a -> toy.low (toy/a.py:2)", "toy.low -> toy.a (toy/low.py:2, lazy)"],  # shortest
        ["toy.c.d -> toy.c.e (toy/c/d.py:1)", "toy.c.e -> toy.c.d (toy/c/e.py:2, lazy)"],
    ]
    assert reaches(edges, "toy.c.e", "toy.c.d") and not reaches(edges, "toy.low", "toy.c.d")


# ------------------------------------------------------ import cost: nothing heavy on import

HEAVY = ("torch", "ray", "mlflow", "transformers", "cv2", "skimage", "pycocotools")
# Modules allowed to load a heavy package at import, and why. Each entry is checked to still
# need it. data.augment is torch tensor ops and nothing else (training imports it lazily);
# DirectSAMPyfunc subclasses mlflow's PythonModel, which MLflow pickles by reference, and
# delivery.registry imports it at module level (could be lazy: it only uses it in functions).
HEAVY_AT_IMPORT = {
    "directsam.data.augment": "torch",
    # Subclasses ray.data.Datasource; only imported inside the functions that read tars.
    "directsam.data.sources.datasource": "ray",
    "directsam.delivery.pyfunc": "mlflow",
    "directsam.delivery.registry": "mlflow",
}

_PROBE = """
import importlib, json, sys
heavy, loaded = {heavy!r}, {{}}
for name in {names!r}:
    before = {{h for h in heavy if h in sys.modules}}
    importlib.import_module(name)
    for h in heavy:
        if h in sys.modules and h not in before:
            loaded[h] = name  # the first module whose import pulled it in
print(json.dumps(loaded))
"""


def _probe(names: list[str]) -> dict[str, str]:
    code = _PROBE.format(heavy=HEAVY, names=names)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_the_package_loads_nothing_heavy():
    # A `__main__` module runs its program when imported (`python -m directsam.cli`).
    names = [
        m
        for m in package_modules(REPO, PACKAGE)
        if m not in HEAVY_AT_IMPORT and not m.endswith(".__main__")
    ]
    loaded = _probe(names)
    assert not loaded, (
        "heavy packages loaded at import (import them inside the function that needs them); "
        f"package -> first module that pulled it in: {loaded}"
    )


def module_level_packages(path: Path) -> set[str]:
    """Top-level names of the absolute imports a module runs at import time."""
    visitor = _Imports()
    visitor.visit(ast.parse(path.read_text()))
    names = set()
    for node, lazy in visitor.found:
        if lazy or (isinstance(node, ast.ImportFrom) and node.level):
            continue
        found = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
        names.update(str(name).split(".")[0] for name in found)
    return names


def test_heavy_import_exceptions_still_hold(edges):
    # Read from the source (a subprocess per module costs seconds of mlflow/torch import): each
    # exception imports its heavy package at module level, itself or through another exception.
    modules = package_modules(REPO, PACKAGE)
    stale = []
    for module, heavy in HEAVY_AT_IMPORT.items():
        via = [
            e
            for e in edges
            if e.source == module and not e.lazy and HEAVY_AT_IMPORT.get(e.target) == heavy
        ]
        if heavy not in module_level_packages(modules[module]) and not via:
            stale.append(module)
    assert not stale, f"drop from HEAVY_AT_IMPORT (no heavy import at module level): {stale}"
