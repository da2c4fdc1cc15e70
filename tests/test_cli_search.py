"""The search from the command line: launch, status, studies, best, export, validate."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import groupwise
from groupwise import TrialConfig, build_optimizer
from groupwise.cli import app
from groupwise.tasks import resolve_task
from paths import subprocess_env

ROOT = Path(__file__).parent.parent
SPACE = """
schemes: [single, module_type, decay_split]
optimizers:
  adamw: {lr: {low: 1.0e-3, high: 3.0e-2, log: true}}
  sgd: {lr: {low: 1.0e-2, high: 0.5, log: true}, momentum: 0.9}
"""


def study_file(tmp_path: Path, trials: int = 4) -> Path:
    (tmp_path / "space.yaml").write_text(SPACE)
    path = tmp_path / "study.yaml"
    path.write_text(
        "name: cli\ntask: user_tasks:tiny\nsearch_space: space.yaml\n"
        f"budget: {{trials: {trials}}}\ntraining: {{epochs: 2, batch_size: 32}}\n"
        "sampler: {name: tpe, options: {n_startup_trials: 2}}\npruner: none\nworkers: {count: 2}\n"
    )
    return path


@pytest.mark.usefixtures("ray_local")
def test_launch_best_export_in_process(tmp_path):
    runner = CliRunner()
    db = f"sqlite:///{tmp_path}/g.db"
    result = runner.invoke(app, ["launch", str(study_file(tmp_path)), "--storage", db])
    assert result.exit_code == 0, result.output
    assert "study cli in" in result.output and "4 finished (4 complete" in result.output
    assert "best: trial" in result.output

    result = runner.invoke(app, ["best", "cli", "--format", "json", "--storage", db])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert {"study", "trial", "value", "direction", "config"} <= set(document)
    assert document["study"] == "cli" and document["direction"] == "minimize"
    model = resolve_task("user_tasks:tiny").build_model()
    build_optimizer(model, document["config"])  # the config as printed builds as is

    out = tmp_path / "best.yaml"
    result = runner.invoke(app, ["export", "cli", "-o", str(out), "--storage", db])
    assert result.exit_code == 0, result.output
    assert TrialConfig.load(out).to_dict() == document["config"]
    optimizer = build_optimizer(model, str(out))
    assert [g["label"] for g in optimizer.param_groups] == list(document["config"]["groups"])

    result = runner.invoke(app, ["best", "cli", "--top", "3", "--format", "yaml", "--storage", db])
    assert result.exit_code == 0 and "top:" in result.output
    result = runner.invoke(app, ["status", "cli", "--storage", db])
    assert result.exit_code == 0 and "cli" in result.output
    result = runner.invoke(
        app, ["export", "cli", "--trial", "0", "-o", str(tmp_path / "t0.json"), "--storage", db]
    )
    assert result.exit_code == 0
    assert json.loads((tmp_path / "t0.json").read_text())["groups"]

    # tune small, transfer big: the best config carried to the task at hidden=64 (4x wider)
    wide = tmp_path / "wide.yaml"
    args = ["export", "cli", "-o", str(wide), "--to-task", "user_tasks:tiny", "--storage", db]
    result = runner.invoke(app, [*args, "--option", "hidden=64"])
    assert result.exit_code == 0, result.output
    assert "carried to user_tasks:tiny {hidden: 64} by sp-per-layer" in result.output, result.output
    proxy, target = (resolve_task("user_tasks:tiny", {"hidden": h}).build_model() for h in (16, 64))
    expected = groupwise.transfer(TrialConfig.from_dict(document["config"]), proxy, target)
    assert TrialConfig.load(wide) == expected
    build_optimizer(target, str(wide))
    result = runner.invoke(app, [*args, "--option", "hidden=64", "--rule", "none", "--force"])
    assert result.exit_code == 0, result.output
    assert TrialConfig.load(wide) == TrialConfig.from_dict(document["config"])  # a copy


def groupwise_exe() -> str:
    exe = shutil.which("groupwise", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip(
            "the groupwise console script is not installed next to this Python (run make test)"
        )
    return exe


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = subprocess_env()
    env.pop("GROUPWISE_STORAGE", None)
    return subprocess.run(
        [groupwise_exe(), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_real_subprocess_launch_best_export_then_build(tmp_path):
    study = study_file(tmp_path, trials=3)
    launched = run("launch", str(study), cwd=tmp_path)  # default storage: ./groupwise.db
    assert launched.returncode == 0, launched.stderr
    assert (tmp_path / "groupwise.db").exists()
    best = run("best", "cli", "--format", "json", cwd=tmp_path)
    assert best.returncode == 0, best.stderr
    assert json.loads(best.stdout)["study"] == "cli"
    exported = run("export", "cli", "-o", "best.yaml", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    model = resolve_task("user_tasks:tiny").build_model()
    optimizer = build_optimizer(model, tmp_path / "best.yaml")
    loss = model(torch.randn(4, 8)).sum()
    loss.backward()
    optimizer.step()
    listed = run("studies", cwd=tmp_path)
    assert listed.stdout.split() == ["cli"]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["launch", "missing.yaml"], "missing.yaml: file not found"),
        (["best", "nope"], "no study database at groupwise.db"),
        (["validate", "bad.yaml"], "bad.yaml: schemes.0: unknown partition scheme 'modul_type'"),
        (["best", "cli", "--top", "0"], "Invalid value for '--top'"),
        (["launch"], "Missing argument 'STUDY_FILE'"),
        (["lunch", "x"], "No such command 'lunch'"),
        (
            ["export", "x", "-o", "best.txt", "--storage", "sqlite:///missing.db"],
            "no study database",
        ),
        (
            ["launch", str(ROOT / "studies" / "quickstart.yaml"), "--ray-address", "127.0.0.1:1"],
            "cannot reach a Ray cluster at '127.0.0.1:1'",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, fragment):
    (tmp_path / "bad.yaml").write_text("schemes: [modul_type]\noptimizers: {adamw: {}}\n")
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and fragment in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "groupwise.db").exists()  # nothing half-written


def test_validate_the_shipped_files():
    result = CliRunner().invoke(
        app, ["validate", *map(str, sorted((ROOT / "studies").glob("*.yaml")))]
    )
    assert result.exit_code == 0, result.output
    assert result.output.count(": ok: study") == len(list((ROOT / "studies").glob("*.yaml")))


def test_unknown_study_in_an_existing_database(tmp_path):
    import optuna

    db = f"sqlite:///{tmp_path}/g.db"
    optuna.create_study(study_name="other", storage=db)
    result = CliRunner().invoke(app, ["best", "nope", "--storage", db])
    assert result.exit_code == 2
    assert "no study 'nope'" in result.output and "studies there: [other]" in result.output


@pytest.mark.parametrize(
    ("task", "fragment"),
    [
        (":fn", "task ':fn' names no module; write it as 'package.module:function'"),
        (".my_tasks:tiny", "task '.my_tasks:tiny' names a relative module '.my_tasks'"),
        ("./nowhere.py:tiny", "task './nowhere.py:tiny': no Python file './nowhere.py'"),
        ("./my_tasks.py:absent", "module './my_tasks.py' has no function 'absent'"),
        ("./broken.py:tiny", "importing"),
    ],
)
@pytest.mark.parametrize("command", ["validate", "launch"])
def test_a_task_written_as_a_path_is_one_line_or_works(tmp_path, task, fragment, command):
    """Users write a task as a file path, or as a relative module; each form that cannot
    work is one line naming the form that does (it was a 45-line traceback, exit 1)."""
    shutil.copy(Path(__file__).parent / "user_tasks.py", tmp_path / "my_tasks.py")
    (tmp_path / "broken.py").write_text("def tiny(*, seed=0):\n    return 1 +\n")
    (tmp_path / "space.yaml").write_text("schemes: [single]\noptimizers: {adamw: {}}\n")
    (tmp_path / "study.yaml").write_text(
        f"name: local\ntask: '{task}'\nsearch_space: space.yaml\nbudget: {{trials: 2}}\n"
    )
    result = run(command, "study.yaml", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: study.yaml: task: ") and fragment in line, line
    if task == "./broken.py:tiny":
        assert "SyntaxError" in line and "broken.py:2" in line
    assert not (tmp_path / "groupwise.db").exists()


def launches_two_trials(cwd: Path) -> None:
    """``groupwise launch study.yaml`` in ``cwd`` as a user's shell runs it (no PYTHONPATH):
    it trains the study's two trials."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GROUPWISE_STORAGE")}
    result = subprocess.run(
        [groupwise_exe(), "launch", "study.yaml"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "2 finished (2 complete" in result.stdout


def test_a_task_file_by_its_path_trains(tmp_path):
    """``path/to/file.py:function``, relative to where the launch runs: the workers load the
    same file."""
    folder = tmp_path / "code"
    folder.mkdir()
    shutil.copy(Path(__file__).parent / "user_tasks.py", folder / "my_tasks.py")
    (tmp_path / "space.yaml").write_text("schemes: [single]\noptimizers: {adamw: {}}\n")
    (tmp_path / "study.yaml").write_text(
        "name: byfile\ntask: code/my_tasks.py:tiny\nsearch_space: space.yaml\n"
        "budget: {trials: 2}\ntraining: {epochs: 1}\npruner: none\nworkers: {count: 1}\n"
    )
    launches_two_trials(tmp_path)


def test_a_task_module_in_the_launch_directory(tmp_path):
    """Like `python -m`, a "module:function" task next to the study file just works."""
    shutil.copy(Path(__file__).parent / "user_tasks.py", tmp_path / "my_tasks.py")
    (tmp_path / "space.yaml").write_text("schemes: [single]\noptimizers: {adamw: {}}\n")
    (tmp_path / "study.yaml").write_text(
        "name: local\ntask: my_tasks:tiny\nsearch_space: space.yaml\nbudget: {trials: 2}\n"
        "training: {epochs: 1}\npruner: none\nworkers: {count: 1}\n"
    )
    launches_two_trials(tmp_path)


@pytest.mark.parametrize(
    ("training", "fragment"),
    [
        ("{precision: fp8}", "training.precision: Input should be 'fp32', 'bf16' or 'fp16'"),
        ("{accumulate: 0}", "training.accumulate"),
        ("{epochs: 2, compile: maybe}", "training.compile"),
    ],
)
def test_bad_training_options_are_one_line_and_exit_2(tmp_path, training, fragment):
    (tmp_path / "space.yaml").write_text(
        "schemes: [single]\noptimizers: {adamw: {}}\nschedule: {warmup: 0.05, decay: cosine}\n"
    )
    (tmp_path / "study.yaml").write_text(
        f"name: t\ntask: digits_mlp\nsearch_space: space.yaml\nbudget: {{trials: 2}}\n"
        f"training: {training}\n"
    )
    for command in ("validate", "launch"):
        result = run(command, "study.yaml", cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("error: ") and fragment in line, line
    assert not (tmp_path / "groupwise.db").exists()
