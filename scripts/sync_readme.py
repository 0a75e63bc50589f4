"""
Copy the example DAGs' snippets into README.md, so the README's code cannot drift from code that
the tests run.

A README block between ``<!-- example: PATH -->`` and ``<!-- /example -->`` gets the lines of PATH
between its ``# [START ...]`` and ``# [END ...]`` markers. ``--check`` only reports drift (exit 1).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BLOCK = re.compile(r"(<!-- example: (?P<path>\S+) -->\n)```python\n.*?```\n(<!-- /example -->)", re.DOTALL)
SNIPPET = re.compile(r"^# \[START [^\]]+\]\n(?P<code>.*?)^# \[END [^\]]+\]$", re.DOTALL | re.MULTILINE)


def snippet(path: str) -> str:
    """The code between the START and END markers of an example file."""
    match = SNIPPET.search((ROOT / path).read_text())
    if match is None:
        raise SystemExit(f"{path} has no # [START ...] / # [END ...] markers")
    return match.group("code")


def synced(text: str) -> str:
    """README text with every example block replaced by its file's current snippet."""
    return BLOCK.sub(lambda m: f"{m.group(1)}```python\n{snippet(m.group('path'))}```\n{m.group(3)}", text)


def main(argv: list[str]) -> int:
    current = README.read_text()
    wanted = synced(current)
    if current == wanted:
        return 0
    if "--check" in argv:
        print("README.md examples differ from example_dags/: run scripts/sync_readme.py", file=sys.stderr)
        return 1
    README.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
