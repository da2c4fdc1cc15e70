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
