"""The architecture as ARCHITECTURE.md states it, checked where an import contract cannot:
what a command loads when it runs, who calls ``suggest_*``, and how long a function may be.
(The stage-to-library rules themselves are import contracts: `make lint` runs lint-imports.)"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "groupwise"
HEAVY = ("ray", "torch", "optuna", "sqlalchemy")


def loaded_by(*argv: str) -> set[str]:
    """The heavy top-level packages a `groupwise ARGV` process has imported when it ends."""
    script = (
        "import json, sys\n"
        f"sys.argv = ['groupwise', *{list(argv)!r}]\n"
        "from groupwise.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_help_loads_none_of_the_heavy_libraries():
    assert loaded_by("--help") == set()
    assert loaded_by("status", "--help") == set()


def test_validate_plans_without_ray_or_a_database():
    loaded = loaded_by("validate", "studies/quickstart.yaml")
    assert "torch" in loaded  # it does build the model: the check can fail
    assert "ray" not in loaded and "sqlalchemy" not in loaded


def _functions() -> list[tuple[Path, ast.FunctionDef | ast.AsyncFunctionDef, list[str]]]:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                found.append((path, node, lines))
    return found


def test_only_sampling_calls_suggest():
    callers = set()
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr.startswith("suggest_"):
                callers.add(path.relative_to(SRC).as_posix())
    assert callers == {"sampling.py"}


@pytest.mark.parametrize("limit", [50])
def test_no_function_is_longer_than_a_screen_unless_it_says_why(limit):
    """A longer function must say why in a comment on the line above its ``def``
    (``# long: ...``), e.g. an Alembic migration that lists a schema."""
    too_long = []
    for path, node, lines in _functions():
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        excused = first >= 2 and lines[first - 2].strip().startswith("# long:")
        if node.end_lineno - node.lineno + 1 > limit and not excused:
            too_long.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name}")
    assert too_long == []
