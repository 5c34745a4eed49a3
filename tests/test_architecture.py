"""The package's layers, read from its imports (ast), so that a later change cannot quietly break them.

Each subpackage is one layer; imports point down this list, never up (docs/architecture.md):
cli and the public API -> cluster/ -> sweep/ -> reports/ -> tracking/ -> search/ -> train/ -> data/ -> storage.py
-> config/ -> the base modules that import nothing of lstm_ray (`BASE`). storage.py (sweep folders,
path -> URI) sits under every layer that writes results and over the config it reads. Function-level imports
count like any other: a circle hidden inside a function is still a circle.
"""

from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "lstm_ray"

# Highest first. A module may import its own layer and the layers after it.
LAYERS = ("api", "cluster", "sweep", "reports", "tracking", "search", "train", "data", "storage", "config", "base")
BASE = {"errors", "outcomes", "process_exit", "redaction"}
API = {"__init__", "api", "cli", "serving"}  # serving.py: the old import path of the pickled model class, a shim
MAX_LINES = 400


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name, e.g. lstm_ray.sweep.tuning
    imported: str  # dotted name of the imported module (a package's __init__ is the package's name)
    line: int


def module_name(package: Path, path: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def read_imports(package: Path) -> list[Import]:
    """Every import statement in the package, at any depth (module level, inside functions, TYPE_CHECKING)."""
    modules = {module_name(package, p) for p in package.rglob("*.py")}
    found = []
    for path in sorted(package.rglob("*.py")):
        importer = module_name(package, path)
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found += [Import(importer, alias.name, node.lineno) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(importer, is_package, node)
                for alias in node.names:  # `from pkg import module` imports the module itself
                    target = f"{base}.{alias.name}"
                    found.append(Import(importer, target if target in modules else base, node.lineno))
    return found


def _absolute(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    parts = importer.split(".")
    keep = len(parts) - node.level + (1 if is_package else 0)
    return ".".join(parts[:keep] + ([node.module] if node.module else []))


def layer(module: str) -> str:
    """The layer of an lstm_ray module: its subpackage, `base` or `api`."""
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    if top in API:
        return "api"
    return "base" if top in BASE else top  # storage is a layer of its own


def upward_imports(package: Path) -> list[str]:
    own = package.name
    problems = []
    for imp in read_imports(package):
        if imp.imported.split(".")[0] != own:
            continue
        source, target = layer(imp.importer), layer(imp.imported)
        if LAYERS.index(target) < LAYERS.index(source):
            problems.append(f"{imp.importer}:{imp.line} imports {imp.imported} ({source} -> {target})")
    return problems


def import_circles(package: Path) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), over every lstm_ray import."""
    own = package.name
    graph: dict[str, set[str]] = {}
    for imp in read_imports(package):
        if imp.imported.split(".")[0] == own and imp.imported != imp.importer:
            graph.setdefault(imp.importer, set()).add(imp.imported)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                circles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return circles


def foreign_imports(package: Path, layers: set[str], libraries: set[str]) -> list[str]:
    """Imports of `libraries` (top-level names, e.g. ray) from modules of `layers`."""
    return [
        f"{imp.importer}:{imp.line} imports {imp.imported}"
        for imp in read_imports(package)
        if layer(imp.importer) in layers and imp.imported.split(".")[0] in libraries
    ]


def mlflow_openers(package: Path) -> list[str]:
    """Calls that create an MLflow client or set the process-wide tracking URI, outside tracking/."""
    found = []
    for path in sorted(package.rglob("*.py")):
        module = module_name(package, path)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                callee = ast.unparse(node.func).split(".")[-1]
                if callee in ("MlflowClient", "set_tracking_uri") and layer(module) != "tracking":
                    found.append(f"{module}:{node.lineno} calls {ast.unparse(node.func)}")
    return found


# --- the rules, on lstm_ray ---------------------------------------------------------------------------------


def test_imports_point_down_the_layers():
    assert upward_imports(PACKAGE) == []


def test_no_import_circle_between_modules_function_level_imports_included():
    assert import_circles(PACKAGE) == []


def test_config_imports_neither_torch_nor_ray():
    assert foreign_imports(PACKAGE, {"config"}, {"torch", "ray"}) == []


def test_config_data_and_train_import_no_ray():
    assert foreign_imports(PACKAGE, {"config", "data", "train"}, {"ray"}) == []


def test_search_never_touches_mlflow():
    assert foreign_imports(PACKAGE, {"search"}, {"mlflow"}) == []


def test_only_tracking_creates_mlflow_clients_or_sets_a_tracking_uri():
    assert mlflow_openers(PACKAGE) == []


def test_every_module_is_one_readable_concept():
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_every_subpackage_is_a_known_layer():
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    assert packages <= set(LAYERS)
    assert modules <= BASE | API | {"storage"}


# --- the checks catch what they are for ---------------------------------------------------------------------


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    """A package with one upward import (train -> sweep), a circle through a function-level import, Ray in
    config/, and an MLflow client made in sweep/."""
    files = {
        "__init__.py": "",
        "errors.py": "",
        "config/__init__.py": "import ray\n",
        "train/__init__.py": "",
        "train/training.py": "from pkg.sweep import trainable\n",
        "sweep/__init__.py": "",
        "sweep/trainable.py": """
            from pkg.sweep.tuning import run

            def restore():
                from mlflow.tracking import MlflowClient

                return MlflowClient("sqlite:///x.db")
            """,
        "sweep/tuning.py": """
            def run():
                from pkg.sweep import trainable
            """,
    }
    root = tmp_path / "pkg"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    return root


def test_the_checks_find_planted_breaches(planted):
    assert upward_imports(planted) == ["pkg.train.training:1 imports pkg.sweep.trainable (train -> sweep)"]
    assert import_circles(planted) == [["pkg.sweep.trainable", "pkg.sweep.tuning"]]
    assert foreign_imports(planted, {"config"}, {"ray"}) == ["pkg.config:1 imports ray"]
    assert mlflow_openers(planted) == ["pkg.sweep.trainable:7 calls MlflowClient"]
