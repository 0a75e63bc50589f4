"""The provider's imports run one way: hooks below the waits, the waits below the tasks."""

from __future__ import annotations

import ast
from pathlib import Path

import airflow_provider_phenv as package
from benchmarks.structure import imports_of

ROOT = Path(package.__file__).parent


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


def product_imports(path: Path, *, top_level_only: bool = False) -> set[str]:
    """The provider's modules an import in ``path`` names (only module-level ones if asked)."""
    tree = ast.parse(path.read_text(), str(path))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.split(".")[0] == package.__name__}


def test_the_input_checks_and_the_errors_import_no_other_provider_module():
    assert product_imports(ROOT / "validation.py") == set()
    assert product_imports(ROOT / "errors.py") == set()


def test_lineage_imports_only_the_input_checks_when_airflow_checks_an_asset_uri():
    # Airflow imports lineage.py for every posthog:// URI it checks (docs/airflow-internals.md).
    assert product_imports(ROOT / "lineage.py", top_level_only=True) == {f"{package.__name__}.validation"}
