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


def test_the_scheme_and_lr_plots_show_the_differences(tmp_path):
    """Values between 2.0 and 2.7 look different (the axis spans them, not 0 to 2.7), and
    Muon's lrs and AdamW's are drawn on panels of their own, one per optimizer kind."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.distributions import FloatDistribution

    from groupwise.analysis._best import trained_trials
    from groupwise.analysis._report import _by_kind, _by_scheme
    from groupwise.store import CONFIG_ATTR

    url = f"sqlite:///{tmp_path}/p.db"
    study = optuna.create_study(study_name="p", storage=url)
    adamw = {"optimizer": "adamw", "lr": 1e-3}
    configs = [
        ({"scheme": "single", "groups": {"all": adamw}}, 2.0),
        ({"scheme": "single", "groups": {"all": adamw | {"lr": 3e-3}}}, 2.1),
        (
            {
                "scheme": "role",
                "groups": {"matrix": {"optimizer": "muon", "lr": 0.02}, "vector": adamw},
            },
            2.6,
        ),
        (
            {
                "scheme": "role",
                "groups": {"matrix": {"optimizer": "muon", "lr": 0.05}, "vector": adamw},
            },
            2.7,
        ),
    ]
    for i, (config, value) in enumerate(configs):
        study.add_trial(
            optuna.trial.create_trial(
                value=value,
                params={"x": float(i)},
                distributions={"x": FloatDistribution(0, 10)},
                user_attrs={CONFIG_ATTR: json.dumps(config)},
            )
        )
    result = compare("p", url)
    rows = trained_trials(optuna.load_study(study_name="p", storage=url))

    fig = plt.figure()
    _by_scheme(rows, result)(fig)
    (ax,) = fig.axes
    low, high = ax.get_xlim()
    assert 1.9 < low < 2.0 and 2.7 < high < 2.8  # not from 0
    plt.close(fig)

    fig = plt.figure()
    _by_kind(rows, result)(fig)
    assert [ax.get_title() for ax in fig.axes] == ["adamw", "muon"]
    adam_lrs = {x for ax in fig.axes[:1] for c in ax.collections for x, _ in c.get_offsets()}
    muon_lrs = {x for ax in fig.axes[1:] for c in ax.collections for x, _ in c.get_offsets()}
    assert adam_lrs == {1e-3, 3e-3} and muon_lrs == {0.02, 0.05}
    plt.close(fig)
