"""The provider's imports run one way: hooks below the waits, the waits below the tasks."""

from __future__ import annotations

import ast
from pathlib import Path

import airflow_provider_phenv as package

ROOT = Path(package.__file__).parent


def imports_of(path: Path) -> set[str]:
    """Every module an import in ``path`` names, at module level or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def offenders(folder: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    """The modules below ``folder`` that import one of ``forbidden`` (packages or modules)."""
    result = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        bad = sorted(
            name
            for name in imports_of(path)
            if any(name == prefix or name.startswith(f"{prefix}.") for prefix in forbidden)
        )
        if bad:
            result[str(path.relative_to(ROOT))] = bad
    return result


def test_the_hooks_import_nothing_from_the_waits_or_the_tasks():
    above = ("waits", "operators", "sensors", "triggers")
    assert offenders("hooks", tuple(f"{package.__name__}.{name}" for name in above)) == {}


def test_the_waits_import_no_operator_sensor_or_trigger():
    above = ("operators", "sensors", "triggers")
    assert offenders("waits", tuple(f"{package.__name__}.{name}" for name in above)) == {}
