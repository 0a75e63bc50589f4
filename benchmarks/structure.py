"""
Item 10: the provider's structure, counted rather than timed.

1. Product modules and lines: every ``.py`` under ``airflow_provider_phenv/`` of the work tree (the
   emulator, in ``emulator/phenv_emulator``, is its own distribution and not counted), and the
   files of a provider wheel built from a copy of the tree (``pip wheel --no-deps``), which must
   hold no emulator file.
2. The modules a pause crosses on its way to the socket: in a fresh interpreter (so that nothing
   earlier has run), ``PostHogPauseBatchExportOperator(...).execute({})`` against an in-process
   emulator under ``sys.setprofile``; every ``airflow_provider_phenv.*`` module whose code ran
   (a frame's ``f_globals["__name__"]``), in the thread that ran the task.
3. Import arrows: the provider modules each ``hooks/*.py`` imports (read with ``ast``, at module
   level or inside functions); none may be under ``waits/``, ``operators/``, ``sensors/`` or
   ``triggers/``.

``python -m benchmarks.structure`` prints all of it; ``python -m benchmarks --only 10`` reports it.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from benchmarks.harness import Figure, check

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "airflow_provider_phenv"
#: The packages the hooks must not import: the layers above them.
ABOVE_THE_HOOKS = tuple(f"{PACKAGE}.{name}" for name in ("waits", "operators", "sensors", "triggers"))
#: Done-when figures of the layout issue (issue 19).
MAX_MODULES, MAX_LINES, MAX_PAUSE_MODULES = 22, 7000, 6

# The pause, in a fresh interpreter. The work tree goes last on sys.path, as in `python -m
# benchmarks`: the installed provider runs, the tests' emulator connection helper comes from the tree.
PAUSE_PROBE = """
import json, os, sys, threading
sys.path.append({root!r})
from phenv_emulator import SEED, PostHogEmulator
from tests.helpers.emulator import api_requests, connection_json
from airflow_provider_phenv.operators.batch_exports import PostHogPauseBatchExportOperator

PREFIX = "airflow_provider_phenv"
ran = set()
task_thread = threading.get_ident()

def profile(frame, event, arg):
    if event == "call":
        name = frame.f_globals.get("__name__", "")
        if name == PREFIX or name.startswith(PREFIX + "."):
            ran.add(name)

with PostHogEmulator(port=0) as emulator:
    os.environ["AIRFLOW_CONN_POSTHOG_DEFAULT"] = connection_json(emulator)
    sys.setprofile(profile)
    try:
        result = PostHogPauseBatchExportOperator(task_id="p", batch_export_id=SEED.s3_export_id).execute({{}})
    finally:
        sys.setprofile(None)
    sent = [f"{{r.method}} {{r.path}}" for r in api_requests(emulator)]
print(json.dumps({{"modules": sorted(ran), "result": result, "requests": sent}}, default=str))
"""


def product_files(root: Path = ROOT) -> dict[str, int]:
    """``{"hooks/posthog.py": lines, ...}`` for every module of the provider package."""
    package = root / PACKAGE
    return {
        str(path.relative_to(package)): len(path.read_text().splitlines())
        for path in sorted(package.rglob("*.py"))
    }


def wheel_files(root: Path = ROOT) -> list[str]:
    """The file names inside a provider wheel built from a copy of the tree (no build/ left behind)."""
    with tempfile.TemporaryDirectory(prefix="phenv-bench-wheel-") as tmp:
        src, out = Path(tmp) / "src", Path(tmp) / "out"
        src.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy(root / name, src / name)
        shutil.copytree(root / PACKAGE, src / PACKAGE, ignore=shutil.ignore_patterns("__pycache__"))
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(src)],
            check=True,
            capture_output=True,
            text=True,
        )
        wheel = next(out.glob("*.whl"))
        return sorted(zipfile.ZipFile(wheel).namelist())


def pause_trace(root: Path = ROOT) -> dict[str, Any]:
    """The provider modules whose code ran during one pause, and what reached the emulator."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AIRFLOW_CONN_")}
    with tempfile.TemporaryDirectory(prefix="phenv-bench-home-") as home:
        env.update(AIRFLOW_HOME=home, AIRFLOW__CORE__LOAD_EXAMPLES="False")
        done = subprocess.run(
            [sys.executable, "-I", "-c", PAUSE_PROBE.format(root=str(root))],
            cwd=home,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"the pause probe failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def imports_of(path: Path, root: Path = ROOT) -> set[str]:
    """The provider modules an import in ``path`` names (``from x import y`` counts ``x.y`` if a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(
                f"{node.module}.{alias.name}"
                for alias in node.names
                if _is_module(f"{node.module}.{alias.name}", root)
            )
    return {name for name in found if name == PACKAGE or name.startswith(f"{PACKAGE}.")}


def _is_module(name: str, root: Path) -> bool:
    """Whether a dotted name is a module or package of the tree (read from the files, not imported)."""
    path = root.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def hook_arrows(root: Path = ROOT) -> dict[str, list[str]]:
    """``{"hooks/posthog.py": [provider modules it imports], ...}``."""
    return {
        f"hooks/{path.name}": sorted(imports_of(path, root))
        for path in sorted((root / PACKAGE / "hooks").glob("*.py"))
    }


def upward(arrows: dict[str, list[str]]) -> dict[str, list[str]]:
    """The arrows that run from a hook module up into the waits or the tasks."""
    found = {module: [n for n in names if n.startswith(ABOVE_THE_HOOKS)] for module, names in arrows.items()}
    return {module: names for module, names in found.items() if names}


def _short(name: str) -> str:
    return name.removeprefix(f"{PACKAGE}.") if name != PACKAGE else "(package)"


def http_provider_files() -> dict[str, int] | None:
    """The same count for apache-airflow-providers-http, where it is installed (the bench venv)."""
    spec = importlib.util.find_spec("airflow.providers.http")
    if spec is None or not spec.submodule_search_locations:
        return None
    package = Path(next(iter(spec.submodule_search_locations)))
    return {
        str(path.relative_to(package)): len(path.read_text().splitlines())
        for path in sorted(package.rglob("*.py"))
    }


def run(root: Path = ROOT) -> tuple[list[Figure], dict[str, Any]]:
    files = product_files(root)
    modules, lines = len(files), sum(files.values())
    try:
        http = http_provider_files()
    except ModuleNotFoundError:
        http = None
    largest = sorted(files.items(), key=lambda item: -item[1])[:3]
    wheel = wheel_files(root)
    emulator_in_wheel = [name for name in wheel if "emulator" in name.lower()]
    wheel_modules = [name for name in wheel if name.endswith(".py")]
    trace = pause_trace(root)
    crossed = trace["modules"]
    arrows = hook_arrows(root)
    up = upward(arrows)
    figures = [
        Figure(
            10,
            "product modules (.py under airflow_provider_phenv/, __init__ included)",
            modules,
            "modules",
            http=len(http) if http else None,
            floor=f"<= {MAX_MODULES}",
            passed=check(modules, "<=", MAX_MODULES),
            note="emulator excluded (its own distribution); reference: apache-airflow-providers-http",
        ),
        Figure(
            10,
            "product lines",
            lines,
            "lines",
            http=sum(http.values()) if http else None,
            floor=f"<= {MAX_LINES}",
            passed=check(lines, "<=", MAX_LINES),
            note="largest: " + ", ".join(f"{name} {count}" for name, count in largest),
        ),
        Figure(
            10,
            "provider wheel: emulator files",
            len(emulator_in_wheel),
            "files",
            floor="== 0",
            passed=check(len(emulator_in_wheel), "==", 0),
            note=f"pip wheel --no-deps of a copy of the tree: {len(wheel)} files, {len(wheel_modules)} .py",
        ),
        Figure(
            10,
            "pause: provider modules whose code runs on the way to the socket",
            len(crossed),
            "modules",
            floor=f"<= {MAX_PAUSE_MODULES}",
            passed=check(len(crossed), "<=", MAX_PAUSE_MODULES),
            note=f"{', '.join(_short(name) for name in crossed)}; {len(trace['requests'])} request(s)",
        ),
        Figure(
            10,
            "hooks: imports of waits/, operators/, sensors/ or triggers/",
            sum(len(names) for names in up.values()),
            "arrows",
            floor="== 0",
            passed=not up,
            note="static (ast), imports at module level and inside functions",
        ),
    ]
    details = {
        "product_files": files,
        "http_provider_files": http,
        "wheel_files": wheel,
        "pause_modules": crossed,
        "pause_requests": trace["requests"],
        "pause_result": trace["result"],
        "hook_imports": arrows,
        "hook_imports_upward": up,
    }
    return figures, details


def main() -> int:
    figures, details = run()
    files = details["product_files"]
    print(f"product modules: {len(files)}, lines: {sum(files.values())}")
    for name, count in files.items():
        print(f"  {count:6}  {name}")
    emulator = [name for name in details["wheel_files"] if "emulator" in name.lower()]
    print(f"wheel: {len(details['wheel_files'])} files, emulator files: {len(emulator)} {emulator or ''}")
    print(f"pause crosses {len(details['pause_modules'])} provider modules ({details['pause_requests']}):")
    for name in details["pause_modules"]:
        print(f"  {name}")
    print("hooks import:")
    for module, names in details["hook_imports"].items():
        print(f"  {module} -> {', '.join(_short(name) for name in names) or '-'}")
    print(f"upward arrows from the hooks: {details['hook_imports_upward'] or 'none'}")
    missed = [f.name for f in figures if f.passed is False]
    print(f"floors missed: {missed or 'none'}")
    # The one assertion: an arrow from the hooks up into the waits or the tasks is a layering bug.
    return 1 if details["hook_imports_upward"] else 0


if __name__ == "__main__":
    sys.exit(main())
