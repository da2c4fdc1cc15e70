"""The groupwise command, in-process (CliRunner) and as the installed console script."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from groupwise.cli import app


def test_demo_trains_and_prints_groups():
    result = CliRunner().invoke(app, ["demo", "--steps", "25"])
    assert result.exit_code == 0, result.output
    assert "partition(model, 'role')" in result.output
    assert re.search(r"matrix\s+2\s+32,768\s+muon", result.output)
    first, last = map(
        float, re.search(r"loss ([\d.]+) -> ([\d.]+) in 25 steps", result.output).groups()
    )
    assert last < first - 0.5  # it learns the corpus, not just runs


def test_installed_console_script():
    exe = shutil.which("groupwise", path=str(__import__("pathlib").Path(sys.executable).parent))
    if exe is None:
        pytest.skip(
            "the groupwise console script is not installed next to this Python (run make test)"
        )
    out = subprocess.run([exe, "version"], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.startswith("groupwise 0.1.0 (torch ")


def test_unknown_command_exits_2():
    result = CliRunner().invoke(app, ["nope"])
    assert result.exit_code == 2


def test_serve_help_says_what_the_server_does_without_a_cluster():
    """Without --ray-address the server starts one local Ray head for all its jobs (README,
    'Run as a service'); the help said each job started its own."""
    result = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "one local Ray head this server starts with its first job and shares" in text
    assert "each job starts its own" not in text


def test_partition_shows_how_each_scheme_splits_a_tasks_model(tmp_path):
    """Without writing Python: each scheme's groups, their tensors by name, shapes and sizes."""
    result = CliRunner().invoke(
        app,
        [
            "partition",
            "tiny_transformer",
            "--scheme",
            "role",
            "--scheme",
            "{name: depth, blocks: 3}",
        ],
    )
    assert result.exit_code == 0, result.output
    text = result.output
    assert text.startswith("task tiny_transformer: TinyTransformer, 28 trainable tensors")
    assert "scheme role (3 groups)" in text and "scheme depth(3) (3 groups)" in text
    assert "  embedding: tok.weight (100, 64), pos.weight (64, 64)" in text
    assert re.search(r"matrix\s+8\s+98,304", text)
    by_default = CliRunner().invoke(app, ["partition", "user_tasks:tiny", "--no-names"])
    assert by_default.exit_code == 0, by_default.output
    for name in ("single", "module_type", "decay_split", "role", "depth"):
        assert f"scheme {name} (" in by_default.output
    assert "  all: " not in by_default.output  # --no-names
    # a study file: its task, options and its space's schemes (ranges expanded)
    space = tmp_path / "space.yaml"
    space.write_text(
        "schemes: [{name: depth, blocks: {low: 2, high: 3}}]\noptimizers: {adamw: {}}\n"
    )
    study = tmp_path / "study.yaml"
    study.write_text(
        "name: s\ntask: {name: digits_mlp, options: {hidden: 32}}\nsearch_space: space.yaml\n"
        "budget: {trials: 1}\n"
    )
    from_file = CliRunner().invoke(app, ["partition", str(study)])
    assert from_file.exit_code == 0, from_file.output
    assert "scheme depth(2)" in from_file.output and "(32, 64)" in from_file.output
    # depth 3 does not fit a 2-layer model: said, as a launch would say it
    assert "scheme depth(3)" not in from_file.output and "use blocks <= 2" in from_file.output


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["partition", "tiny_transformr"], "unknown task 'tiny_transformr'"),
        (["partition", "tiny_transformer", "--scheme", "rol"], "unknown partition scheme 'rol'"),
        (["partition", "digits_mlp", "--option", "hidden"], "write KEY=VALUE"),
        (["partition", "digits_mlp", "--option", "width=3"], "width"),
    ],
)
def test_partition_refuses_bad_input_in_one_line(args, fragment):
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "groupwise", *args], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and fragment in line, line
