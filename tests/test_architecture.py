"""The architecture as ARCHITECTURE.md states it, checked where an import contract cannot:
that the contracts cover every module, what a command loads when it runs, who calls
``suggest_*``, that execution holds no Optuna object while a study runs, and how long a
module, a class and a function may be. (The stage-to-library rules themselves are import
contracts: `make lint` runs lint-imports.)"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import tomllib
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
    """Sampling draws every parameter. The one other place a ``suggest_*`` name appears is
    the store's Suggestions, which hands sampling a new trial's suggest calls (and nothing
    else of the trial): it must forward exactly the Suggester protocol's methods."""
    from groupwise.sampling import Suggester
    from groupwise.store._suggestions import Suggestions

    callers = set()
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr.startswith("suggest_"):
                callers.add(path.relative_to(SRC).as_posix())
    forwarded = {"store/_suggestions.py"}
    assert callers - forwarded and all(p.startswith("sampling/") for p in callers - forwarded)
    methods = {n for n in vars(Suggestions) if not n.startswith("_")}
    protocol = {n for n in vars(Suggester) if n.startswith("suggest_")}
    assert methods == protocol == {"suggest_float", "suggest_int", "suggest_categorical"}


def _modules() -> list[str]:
    """Every module of the package by its dotted name (a package by its own name)."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


def test_the_layers_contract_places_every_module():
    """A module outside every layer would be outside the data-flow rule: each must sit in
    (or under) one layer of the import contract. The root ``__init__`` cannot be a layer;
    the next test checks it."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    placed = [name.strip() for layer in layers for name in layer.split("|")]
    outside = [
        m
        for m in _modules()
        if m != "groupwise" and not any(m == p or m.startswith(f"{p}.") for p in placed)
    ]
    assert outside == []


def test_the_root_package_loads_only_the_public_stages():
    """``import groupwise`` is the public API: its names load on first use from config, optim
    and partition, ``Trial`` (a function task's) from training, ``TrialPruned`` from errors,
    ``transfer`` from transfer, and ``load_best`` from analysis; nothing else, so importing
    it is cheap and it sits above every stage without reaching into one's insides."""
    tree = ast.parse((SRC / "__init__.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.Dict):  # the table of names loaded on first use
            imported |= {v.value for v in node.values if isinstance(v, ast.Constant)}
    ours = {m for m in imported if m.startswith("groupwise")}
    assert ours == {
        "groupwise",  # `from groupwise import errors`
        "groupwise.errors",  # TrialPruned: no torch, so `except groupwise.TrialPruned` is free
        "groupwise.training",  # Trial
        "groupwise.config",
        "groupwise.optim",
        "groupwise.partition",
        "groupwise.transfer",  # transfer
        "groupwise.analysis",
    }
    assert imported - ours <= {"__future__", "importlib", "sys", "types", "typing"}


@pytest.mark.parametrize(("kind", "limit"), [("module", 450), ("class", 300)])
def test_no_module_or_class_is_too_big_to_read(kind, limit):
    """A room a newcomer can take in: no module over 450 lines, no class over 300."""
    too_big = []
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text()
        if kind == "module" and len(text.splitlines()) > limit:
            too_big.append(f"{path.relative_to(SRC)} ({len(text.splitlines())} lines)")
        for node in ast.walk(ast.parse(text)) if kind == "class" else ():
            size = node.end_lineno - node.lineno + 1 if isinstance(node, ast.ClassDef) else 0
            if size > limit:
                too_big.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name} ({size})")
    assert too_big == []


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
    from groupwise.studyfiles import read_study
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


def _optuna_objects(value, depth: int = 2) -> list[type]:
    """The Optuna-typed objects in ``value``: itself, the items of a container, and the
    attributes of one of groupwise's execution objects (a level down, and again)."""
    if type(value).__module__.split(".")[0] == "optuna":
        return [type(value)]
    if depth == 0:
        return []
    if isinstance(value, dict):
        inner = [*value.keys(), *value.values()]
    elif isinstance(value, list | tuple | set | frozenset):
        inner = list(value)
    elif type(value).__module__.startswith("groupwise.execution") and hasattr(value, "__dict__"):
        inner = list(vars(value).values())
    else:
        return []
    return [t for item in inner for t in _optuna_objects(item, depth - 1)]


@pytest.mark.usefixtures("ray_local")
def test_execution_never_holds_an_optuna_object(tmp_path):
    """Optuna lives in plan, store and analysis; execution speaks to the ledger by trial
    number. Checked as it runs, not by its imports: every call into and return from a
    function of ``groupwise.execution`` during a launch (pruning, a relaunch, warm-start
    recipes) is watched, and no argument, local or return value, no item of one, and no
    attribute of an execution object, may be an Optuna object (a trial, a sampler, a study)."""
    from groupwise.execution import launch
    from groupwise.studyfiles import read_study
    from test_execution import make_study

    execution = str(SRC / "execution")
    seen: set[tuple[str, str]] = set()

    def watch(frame, event, arg):
        if event not in ("call", "return") or not frame.f_code.co_filename.startswith(execution):
            return
        values = [*frame.f_locals.values(), *([arg] if event == "return" else [])]
        for kind in (t for v in values for t in _optuna_objects(v)):
            seen.add((frame.f_code.co_name, f"{kind.__module__}.{kind.__qualname__}"))

    path = make_study(tmp_path, trials=5, epochs=3, pruner="median", sampler="tpe")
    db = f"sqlite:///{tmp_path}/g.db"
    sys.setprofile(watch)
    try:
        launch(read_study(path), storage=db)
        launch(read_study(path).with_overrides(trials=7), storage=db)  # a relaunch
    finally:
        sys.setprofile(None)
    assert sorted(seen) == []
