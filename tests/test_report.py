"""`groupwise report` on a finished study, on SQLite and on PostgreSQL: the page holds the
comparison tables and every plot, and the PNG files are real, non-blank images."""

from __future__ import annotations

import html

import matplotlib.image
import pytest

from groupwise.analysis import PLOTS, best_trials, compare, write_report
from groupwise.execution import launch
from groupwise.studyfiles import read_study
from test_cli_search import run
from test_execution import make_study


@pytest.mark.usefixtures("ray_local")
def test_report_writes_the_page_and_the_plots(tmp_path, storage_url):
    launch(
        read_study(make_study(tmp_path, trials=8, epochs=3, name="rep", pruner="median")),
        storage=storage_url,
    )
    written = write_report("rep", tmp_path / "report", storage_url)

    page = written.page.read_text()
    assert "groupwise report: rep" in page
    result = compare("rep", storage_url)
    for s in result.by_scheme:  # the comparison tables, as `groupwise compare` gives them
        assert f"<td>{html.escape(s.scheme)}</td><td>{s.complete}</td>" in page
    for o in result.by_optimizer:
        assert f"<td>{o.label}</td><td>{o.optimizer}</td><td>{o.complete}</td>" in page
    best = best_trials("rep", storage_url)[0]
    assert f"Best config (trial {best.trial})" in page
    assert page.count("<svg") == len(PLOTS)
    assert sorted(p.name for p in written.plots) == sorted(f"{name}.png" for name in PLOTS)
    for png in written.plots:
        pixels = matplotlib.image.imread(png)
        assert pixels.shape[0] > 300 and pixels.shape[1] > 500
        assert pixels[..., :3].std() > 0.05, png  # something was drawn

    done = run("report", "rep", "-o", str(tmp_path / "cli"), "--storage", storage_url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "cli" / "index.html").exists() and "5 plots" in done.stdout


def test_report_errors_are_one_line(tmp_path):
    db = f"sqlite:///{tmp_path}/none.db"
    done = run("report", "x", "-o", str(tmp_path / "out"), "--storage", db, cwd=tmp_path)
    assert done.returncode == 2 and "no study database" in done.stderr
