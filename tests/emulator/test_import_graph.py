"""The emulator's modules import one another without circles.

Imports made only for type checking count too, and so does the ``__init__`` of every package an
import enters from outside (importing ``a.b.c`` from outside ``a.b`` runs ``a/b/__init__.py``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import phenv_emulator as package

ROOT = Path(package.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join((package.__name__, *parts))


def _imported(node: ast.Import | ast.ImportFrom, importer: str, is_package: bool) -> list[str]:
    """Dotted names an import statement may load (modules or packages; unknown ones included)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = importer if is_package else importer.rpartition(".")[0]
    for _ in range(node.level - 1):
        base = base.rpartition(".")[0]
    module = ".".join(part for part in (base if node.level else "", node.module or "") if part)
    return [module, *(f"{module}.{alias.name}" for alias in node.names)]


def import_graph() -> dict[str, set[str]]:
    """Emulator module → the emulator modules and packages its imports run."""
    files = {_module_name(path): path for path in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for importer, path in files.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for name in _imported(node, importer, path.name == "__init__.py"):
                parts = name.split(".")
                for end in range(1, len(parts) + 1):
                    entered = ".".join(parts[:end])
                    if entered in files and entered != importer and not importer.startswith(f"{entered}."):
                        graph[importer].add(entered)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle per back edge of a depth-first walk: empty exactly when the graph is acyclic."""
    found: list[list[str]] = []
    done: set[str] = set()

    def walk(path: list[str]) -> None:
        for target in sorted(graph[path[-1]]):
            if target in path:
                found.append([*path[path.index(target) :], target])
            elif target not in done:
                walk([*path, target])
        done.add(path[-1])

    for start in sorted(graph):
        if start not in done:
            walk([start])
    return found


def test_the_graph_sees_relative_imports():
    assert package.PostHogEmulator.__module__ in import_graph()[package.__name__]


def test_no_import_circles():
    prefix = f"{package.__name__}."
    assert [
        " -> ".join(name.removeprefix(prefix) for name in circle) for circle in circles(import_graph())
    ] == []
