"""The architecture as ARCHITECTURE.md states it, checked where an import contract cannot:
what a command loads when it runs, who calls ``suggest_*``, and how long a function may be.
(The stage-to-library rules themselves are import contracts: `make lint` runs lint-imports.)"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "groupwise"
HEAVY = ("ray", "torch", "optuna", "sqlalchemy")


def run_cli(*argv: str, cwd: Path = ROOT) -> tuple[set[str], int, str, str]:
    """Run `groupwise ARGV` in a fresh process: (the heavy top-level packages it imported,
    its exit code, its stdout without the last line, its stderr)."""
    script = (
        "import json, sys\n"
        f"sys.argv = ['groupwise', *{list(argv)!r}]\n"
        "from groupwise.cli import main\n"
        "code = 0\n"
        "try:\n    main()\nexcept SystemExit as e:\n    code = e.code or 0\n"
        f"heavy = {{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})\n"
        "print(json.dumps([sorted(heavy), code]))\n"
    )
    tests = str(Path(__file__).resolve().parent)  # user_tasks lives there
    path = os.pathsep.join(p for p in (tests, os.environ.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env={**os.environ, "PYTHONPATH": path},
    )
    *out, last = done.stdout.strip().splitlines()
    heavy, code = json.loads(last)
    return set(heavy), code, "\n".join(out), done.stderr


def loaded_by(*argv: str) -> set[str]:
    """The heavy top-level packages a successful `groupwise ARGV` has imported."""
    heavy, code, _, err = run_cli(*argv)
    assert code == 0, err
    return heavy


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
    assert callers and all(path.startswith("sampling/") for path in callers), callers


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


@pytest.mark.usefixtures("ray_local")
def test_a_finished_or_changed_study_is_answered_before_ray_starts(tmp_path):
    """The database is read before any worker starts: a study at its budget says so and what
    to pass; a study file changed since the first launch names the fields that differ."""
    from groupwise.execution import launch
    from groupwise.spec import read_study
    from test_execution import make_study

    path = make_study(tmp_path, trials=2, epochs=1)
    db = f"sqlite:///{tmp_path}/g.db"
    launch(read_study(path), storage=db)

    heavy, code, out, _ = run_cli("launch", str(path), "--storage", db, cwd=tmp_path)
    assert code == 0 and "ray" not in heavy
    assert "already has 2 finished trials, its budget of 2" in out and "--trials N" in out

    path.write_text(path.read_text().replace("epochs: 1", "epochs: 2"))
    heavy, code, _, err = run_cli("launch", str(path), "--storage", db, cwd=tmp_path)
    assert code == 2 and "ray" not in heavy
    assert err.count("\n") == 1 and "training.epochs: 1 -> 2" in err
