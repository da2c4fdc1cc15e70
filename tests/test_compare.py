"""Comparisons, exports of runs and epochs, and the CLI for them, on a finished study, on
SQLite and on PostgreSQL. Expected figures are worked out here from Optuna's own trials."""

from __future__ import annotations

import csv
import json
import statistics

import optuna
import pytest
from optuna.trial import TrialState

from groupwise.analysis import compare, compare_studies, epoch_rows, run_rows, write_rows
from groupwise.config import TrialConfig
from groupwise.errors import ConfigError, StudyError
from groupwise.execution import launch
from groupwise.store import CONFIG_ATTR, DUPLICATE_ATTR
from groupwise.studyfiles import read_study
from test_cli_search import run
from test_execution import make_study

BASELINE = """
schemes: [single]
optimizers:
  adamw: {lr: {low: 1.0e-3, high: 3.0e-2, log: true}}
"""

pytestmark = pytest.mark.usefixtures("ray_local")


def trained(storage: str, name: str) -> list[tuple[optuna.trial.FrozenTrial, TrialConfig]]:
    trials = optuna.load_study(study_name=name, storage=storage).get_trials()
    return [
        (t, TrialConfig.from_json(t.user_attrs[CONFIG_ATTR]))
        for t in trials
        if DUPLICATE_ATTR not in t.user_attrs
    ]


def test_compare_and_export_a_finished_study(tmp_path, storage_url):
    launch(read_study(make_study(tmp_path, trials=12, epochs=2, name="g")), storage=storage_url)
    rows = trained(storage_url, "g")
    complete = [(t, c) for t, c in rows if t.state == TrialState.COMPLETE]

    result = compare("g", storage_url, top=3)
    assert result.metric == "val_loss" and result.direction == "minimize"
    for s in result.by_scheme:  # best, median and count per scheme, as Optuna has them
        values = [t.value for t, c in complete if str(c.scheme) == s.scheme]
        assert (s.complete, s.best, s.median) == (
            len(values),
            min(values),
            statistics.median(values),
        )
    assert sum(s.complete for s in result.by_scheme) == len(complete)
    best_trial = min(complete, key=lambda tc: tc[0].value)[0]
    for o in result.by_optimizer:  # which optimizer wins per group label
        values = [
            t.value
            for t, c in complete
            if o.label in c.groups and c.groups[o.label].optimizer == o.optimizer
        ]
        assert (o.complete, o.best) == (len(values), min(values))
        winner = min(
            ((t, c) for t, c in complete if o.label in c.groups), key=lambda tc: tc[0].value
        )
        assert o.wins == (winner[1].groups[o.label].optimizer == o.optimizer)
    top3 = sorted(complete, key=lambda tc: tc[0].value)[:3]
    for g in result.lr:  # each group's lr among the 3 best trials
        lrs = [c.groups[g.label].hyperparameters["lr"] for _, c in top3 if g.label in c.groups]
        assert (g.top_low, g.top_high, g.top_count) == (min(lrs), max(lrs), len(lrs))

    # Runs and epochs, through CSV and JSON, as pandas would read them.
    runs = run_rows("g", storage_url)
    assert [r["trial"] for r in runs] == list(range(12))  # one run per trial, replays too
    write_rows(runs, tmp_path / "runs.csv")
    with (tmp_path / "runs.csv").open() as f:
        read = list(csv.DictReader(f))
    assert len(read) == len(runs) == 12
    by_trial = {int(r["trial"]): r for r in read}
    for t, c in rows:
        row = by_trial[t.number]
        assert row["state"] == t.state.name and float(row["value"]) == t.value  # repr round-trips
        for label, group in c.groups.items():
            assert row[f"{label}.optimizer"] == group.optimizer
            assert float(row[f"{label}.lr"]) == group.hyperparameters["lr"]
        assert row["started_at"].endswith("+00:00")  # UTC, said so
    epochs = epoch_rows("g", storage_url)
    write_rows(epochs, tmp_path / "epochs.json")
    loaded = json.loads((tmp_path / "epochs.json").read_text())
    for t, c in rows:
        mine = [e for e in loaded if e["trial"] == t.number]
        assert {e["epoch"]: e["metric"] for e in mine} == t.intermediate_values
        assert all(
            {k for k in e if k.startswith("lr.")} == {f"lr.{g}" for g in c.groups} for e in mine
        )
    with pytest.raises(ConfigError, match=r"runs\.xlsx.*name the file \.csv or \.json"):
        write_rows(runs, tmp_path / "runs.xlsx")

    # The same through the CLI.
    done = run("compare", "g", "--by", "optimizer", "--storage", storage_url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "best val_loss (min)" in done.stdout and "yes" in done.stdout
    done = run(
        "export",
        "g",
        "--epochs",
        "-o",
        str(tmp_path / "e.csv"),
        "--storage",
        storage_url,
        cwd=tmp_path,
    )
    assert done.returncode == 0 and f"({len(epochs)} epochs)" in done.stdout

    # A single-optimizer baseline on the same task, compared in one command.
    (tmp_path / "base_space.yaml").write_text(BASELINE)
    launch(
        read_study(make_study(tmp_path, trials=6, epochs=2, name="base", space=BASELINE)),
        storage=storage_url,
    )
    summaries = compare_studies(["base", "g"], storage_url)
    base_best = min(t.value for t, _ in trained(storage_url, "base") if t.value is not None)
    assert summaries[0].best == base_best and summaries[0].trials_to_baseline is not None
    ordered = sorted(rows, key=lambda tc: tc[0].number)
    reach = next(
        (i + 1 for i, (t, _) in enumerate(ordered) if t.value is not None and t.value <= base_best),
        None,
    )
    assert summaries[1].best == best_trial.value and summaries[1].trials_to_baseline == reach
    done = run("compare", "base", "g", "--storage", storage_url, cwd=tmp_path)
    assert done.returncode == 0 and "trials to reach base's best" in done.stdout


def test_comparison_errors_are_one_line(tmp_path):
    db = f"sqlite:///{tmp_path}/s.db"
    launch(read_study(make_study(tmp_path, trials=2, epochs=1, name="a")), storage=db)
    launch(
        read_study(make_study(tmp_path, trials=2, epochs=1, name="b", task="user_tasks:faulty")),
        storage=db,
    )
    with pytest.raises(StudyError, match="ran task 'user_tasks:faulty'.*same task"):
        compare_studies(["a", "b"], db)
    done = run("compare", "nope", "--storage", db, cwd=tmp_path)
    assert (
        done.returncode == 2 and done.stderr.count("\n") == 1 and "no study 'nope'" in done.stderr
    )
    done = run(
        "export",
        "a",
        "--runs",
        "--epochs",
        "-o",
        str(tmp_path / "x.csv"),
        "--storage",
        db,
        cwd=tmp_path,
    )
    assert done.returncode == 2 and "give one of them" in done.stderr
