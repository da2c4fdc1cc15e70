"""A best config that holds up: the objective's reduce, and the confirmation of the leaders on
fresh seeds (``confirm:``), against a real local Ray cluster and real databases."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState
from typer.testing import CliRunner

from groupwise import load_best
from groupwise.analysis import best_trials, noise_note
from groupwise.cli import app
from groupwise.config import TrialConfig
from groupwise.execution import launch
from groupwise.plan import fingerprint, make_plan
from groupwise.store import CONFIRMS_ATTR, TRAIN_SEED_ATTR, Confirmed, fresh_seeds, within_noise
from groupwise.store._attrs import DUPLICATE_ATTR, RETRIED_ATTR
from groupwise.studyfiles import Objective, read_study
from groupwise.tasks import resolve_task
from groupwise.training import Trainer, TrainingOptions

FLUKE_SPACE = """
schemes: [single]
optimizers:
  sgd: {lr: {choices: [1.0e-9, 0.2]}}
"""


def study(tmp_path: Path, *, space=FLUKE_SPACE, extra="confirm: {top: 2, seeds: 2}", **kw) -> Path:
    (tmp_path / "space.yaml").write_text(space)
    path = tmp_path / "s.yaml"
    path.write_text(
        f"name: s\ntask: {kw.get('task', 'user_tasks:fluke')}\nsearch_space: space.yaml\n"
        f"budget: {{trials: {kw.get('trials', 6)}}}\n"
        f"training: {{epochs: {kw.get('epochs', 3)}, batch_size: 16}}\n"
        f"sampler: {{name: random}}\npruner: none\nworkers: {{count: 2}}\nseed: 0\n{extra}\n"
    )
    return path


def trials_of(db: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name="s", storage=db).get_trials()


def lr_of(trial: optuna.trial.FrozenTrial) -> float:
    return (
        TrialConfig.from_json(trial.user_attrs["groupwise.config"])
        .groups["all"]
        .hyperparameters["lr"]
    )


# -- the trial's value ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("reduce", "direction", "expected"),
    [
        ("last", "minimize", 2.0),
        ("best", "minimize", 1.0),
        ("best", "maximize", 4.0),
        ({"mean_last": 2}, "minimize", 1.5),
        ("mean_last: 3", "minimize", 2.0),
        ({"mean_last": 4}, "maximize", 2.5),
    ],
)
def test_each_reduce_on_a_known_curve(reduce, direction, expected):
    curve = [4.0, 3.0, 1.0, 2.0]
    assert Objective(reduce=reduce, direction=direction).value_of(curve) == pytest.approx(expected)


@pytest.mark.usefixtures("ray_local")
@pytest.mark.parametrize("reduce", ["best", "{mean_last: 2}"])
def test_a_study_values_its_trials_by_its_reduce(tmp_path, reduce):
    db = f"sqlite:///{tmp_path}/r.db"
    space = "schemes: [single]\noptimizers:\n  sgd: {lr: {low: 0.01, high: 3.0, log: true}}\n"
    extra = f"objective: {{metric: val_loss, reduce: {reduce}}}"
    launch(
        read_study(study(tmp_path, space=space, extra=extra, task="user_tasks:tiny")), storage=db
    )
    trials = [t for t in trials_of(db) if t.state == TrialState.COMPLETE]
    assert len(trials) == 6
    for t in trials:
        curve = [t.intermediate_values[e] for e in sorted(t.intermediate_values)]
        want = min(curve) if reduce == "best" else statistics.fmean(curve[-2:])
        assert t.value == want
    # differently reduced trials are another study's: the fingerprint says so, "last" keeps
    # the fingerprint studies had before reduce existed
    spec = read_study(tmp_path / "s.yaml")
    last = spec.model_copy(update={"objective": Objective()})
    assert fingerprint(spec) != fingerprint(last)


# -- confirmation ------------------------------------------------------------------------------
@pytest.mark.usefixtures("ray_local")
def test_a_fluke_wins_the_search_and_loses_its_confirmation(tmp_path, storage_url):
    db = storage_url
    result = launch(read_study(study(tmp_path)), storage=db)
    trials = trials_of(db)
    confirmations = [t for t in trials if CONFIRMS_ATTR in t.user_attrs]
    search = [
        t
        for t in trials
        if t.state == TrialState.COMPLETE
        and not {CONFIRMS_ATTR, DUPLICATE_ATTR} & set(t.user_attrs)
    ]
    # the search's best single trial is the untrained config, on the study's lucky seed
    fluke = min(search, key=lambda t: t.value)
    assert lr_of(fluke) == 1e-9 and fluke.value == 0.0
    # the budget (6) is 2 search trials and 2 leaders x 2 fresh seeds, all trained to the end
    assert len(search) == 2 and {lr_of(t) for t in search} == {1e-9, 0.2}
    assert len(confirmations) == 4
    assert all(t.state == TrialState.COMPLETE for t in confirmations)
    assert all(sorted(t.intermediate_values) == [1, 2, 3] for t in confirmations)
    for leader in search:
        mine = [t for t in confirmations if t.user_attrs[CONFIRMS_ATTR] == leader.number]
        assert sorted(t.user_attrs[TRAIN_SEED_ATTR] for t in mine) == list(fresh_seeds(0, 2))
        assert all(t.params == leader.params for t in mine)
    counts = result.progress.counts
    assert (counts.finished, counts.confirmations, counts.complete) == (6, 4, 6)
    # each confirmation trained from the seed it says: the same numbers, trained here
    task = resolve_task("user_tasks:fluke")
    torch.set_num_threads(1)  # as the worker does
    for t in confirmations:
        config = TrialConfig.from_json(t.user_attrs["groupwise.config"])
        trainer = Trainer(
            task,
            config,
            seed=t.user_attrs[TRAIN_SEED_ATTR],
            options=TrainingOptions(epochs=3, batch_size=16),
        )
        curve = {e: trainer.run_epoch().metrics["val_loss"] for e in (1, 2, 3)}
        assert curve == t.intermediate_values
    # the leader is the config with the best mean over its fresh seeds: the trained one
    best = best_trials("s", db, top=2)
    assert [lr_of(next(t for t in search if t.number == b.trial)) for b in best] == [0.2, 1e-9]
    lead = best[0].confirmed
    assert lead is not None and lead.seeds == fresh_seeds(0, 2) and lead.failed == 0
    assert best[0].value == statistics.fmean(lead.values) < 0.02
    assert best[1].value > 0.2 and best[1].confirmed.search_value == 0.0
    assert counts.best_trial == best[0].trial and counts.best_value == best[0].value
    assert counts.best_seeds == 2 and counts.best_spread == statistics.stdev(lead.values)
    assert load_best("s", storage=db) == best[0].config == result.best_config


@pytest.mark.usefixtures("ray_local")
def test_confirmations_are_never_run_twice_nor_proposed_again(tmp_path):
    db = f"sqlite:///{tmp_path}/c.db"
    path = study(tmp_path)
    launch(read_study(path), storage=db)
    first = {t.number: (t.state, t.value) for t in trials_of(db)}
    again = launch(read_study(path), storage=db)  # at its budget: nothing runs
    assert again.ran == 0 and {t.number: (t.state, t.value) for t in trials_of(db)} == first
    # more budget: the search goes on (this space has no new config: it stops early), and
    # the leaders, already confirmed, are not confirmed again
    launch(read_study(path).with_overrides(trials=8), storage=db)
    trials = trials_of(db)
    confirmations = [t for t in trials if CONFIRMS_ATTR in t.user_attrs]
    assert len(confirmations) == 4
    pairs = {(t.user_attrs[CONFIRMS_ATTR], t.user_attrs[TRAIN_SEED_ATTR]) for t in confirmations}
    assert len(pairs) == 4
    assert all(first.get(t.number) == (t.state, t.value) for t in confirmations)


def test_best_and_export_carry_the_mean_its_spread_and_its_seeds(tmp_path):
    db = f"sqlite:///{tmp_path}/e.db"
    runner = CliRunner()
    launched = runner.invoke(app, ["launch", str(study(tmp_path)), "--storage", db])
    assert launched.exit_code == 0, launched.output
    assert "4 confirmations" in launched.output and "mean over 2 fresh seeds" in launched.output
    shown = runner.invoke(app, ["best", "s", "--storage", db, "--format", "json"])
    document = json.loads(shown.output)
    confirmed = document["confirmed"]
    assert confirmed["seeds"] == 2 and confirmed["train_seeds"] == list(fresh_seeds(0, 2))
    assert document["value"] == confirmed["mean"] == statistics.fmean(confirmed["values"])
    assert confirmed["spread"] == statistics.stdev(confirmed["values"])
    table = runner.invoke(app, ["best", "s", "--storage", db, "--top", "2"])
    assert table.exit_code == 0 and "2 fresh" in table.output
    out = tmp_path / "best.yaml"
    exported = runner.invoke(app, ["export", "s", "--storage", db, "-o", str(out)])
    assert exported.exit_code == 0, exported.output
    first_line = out.read_text().splitlines()[0]
    assert first_line.startswith(f"# study s, trial {document['trial']}: val_loss ")
    assert "over 2 fresh seeds" in first_line and "its search trial" in first_line
    assert TrialConfig.load(out) == TrialConfig.from_dict(document["config"])


def _confirmed(trial: int, values: list[float], seeds: tuple[int, ...] = (1, 2, 3)) -> Confirmed:
    return Confirmed(trial, None, tuple(values), seeds[: len(values)])


def test_leaders_within_each_others_noise_are_said_to_be():
    noisy = _confirmed(1, [0.10, 0.30, 0.20])
    close = _confirmed(2, [0.12, 0.27, 0.23])  # differences 0.02, -0.03, 0.03: no clear winner
    apart = _confirmed(3, [0.20, 0.40, 0.30])  # 0.1 worse on every seed: clearly worse
    assert within_noise(noisy, close) is not None
    assert within_noise(noisy, apart) is None
    assert within_noise(noisy, _confirmed(4, [0.5])) is None  # one shared seed: no error to judge
    from groupwise.analysis import BestTrial

    config = TrialConfig.from_dict({"scheme": "single", "groups": {"all": {"optimizer": "sgd"}}})
    rows = [
        BestTrial("s", c.trial, c.mean or math.nan, "minimize", "val_loss", config, c)
        for c in (noisy, close)
    ]
    note = noise_note(rows)
    assert note is not None and "trials 1 and 2 are within each other's noise" in note
    rows[1] = BestTrial("s", 3, apart.mean or 0.0, "minimize", "val_loss", config, apart)
    assert noise_note(rows) is None


@pytest.mark.parametrize(
    ("line", "says"),
    [
        (
            "objective: {reduce: median}",
            "objective.reduce: allowed: last, best, or {mean_last: k} (k >= 1) (got 'median')",
        ),
        (
            "objective: {reduce: {mean_last: 5}}",
            "objective.reduce: mean_last 5 averages more epochs than training.epochs (3)",
        ),
        (
            "confirm: {top: 3, seeds: 2}",
            "confirm: top 3 x seeds 2 = 6 trials of budget.trials (6) leaves none",
        ),
        ("confirm: {top: 2}", "confirm has top 2 and seeds 0"),
        ("confirm: 3", "confirm: give {top: K, seeds: R} (confirm the top K"),
    ],
)
def test_bad_reduce_and_confirm_are_one_line_and_exit_2(tmp_path, line, says):
    result = CliRunner().invoke(app, ["validate", str(study(tmp_path, extra=line))])
    assert result.exit_code == 2, result.output
    assert says in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_a_spaces_default_confirmation_holds_where_the_budget_does(tmp_path):
    space = FLUKE_SPACE + "confirm: {top: 2, seeds: 2}\n"
    small = read_study(study(tmp_path, space=space, extra="", trials=6))
    assert small.confirming is None
    assert "it needs budget.trials of 12 or more (it has 6)" in make_plan(small).warnings[-1]
    big = read_study(study(tmp_path, space=space, extra="", trials=12))
    assert big.confirming is not None and big.confirming.trials == 4
    off = read_study(study(tmp_path, space=space, extra="confirm: off", trials=12))
    assert off.confirming is None and off.confirm_note is None
    # the confirmation is not part of what makes a study the same study
    assert fingerprint(big) == fingerprint(off)


def test_a_failed_fresh_seed_ranks_its_config_below_those_that_held():
    from groupwise.store import confirmed

    def trial(number, state, value=None, **attrs):
        return optuna.trial.create_trial(
            state=state, value=value, user_attrs=attrs, params={}, distributions={}
        )

    trials = [
        trial(0, TrialState.COMPLETE, 0.10),
        trial(1, TrialState.COMPLETE, 0.20),
        trial(2, TrialState.COMPLETE, 0.05, **{CONFIRMS_ATTR: 0, TRAIN_SEED_ATTR: 1}),
        trial(3, TrialState.FAIL, None, **{CONFIRMS_ATTR: 0, TRAIN_SEED_ATTR: 2}),
        trial(4, TrialState.COMPLETE, 0.30, **{CONFIRMS_ATTR: 1, TRAIN_SEED_ATTR: 1}),
        trial(5, TrialState.COMPLETE, 0.40, **{CONFIRMS_ATTR: 1, TRAIN_SEED_ATTR: 2}),
        # a lost attempt, retried: it stands for nothing
        trial(
            6, TrialState.FAIL, None, **{CONFIRMS_ATTR: 1, TRAIN_SEED_ATTR: 3, RETRIED_ATTR: True}
        ),
        trial(7, TrialState.RUNNING, None, **{CONFIRMS_ATTR: 1, TRAIN_SEED_ATTR: 3}),
    ]
    for number, t in enumerate(trials):
        t.number = number
    ranked = confirmed(trials, "minimize")
    assert [c.trial for c in ranked] == [1, 0]
    assert ranked[0].values == (0.30, 0.40) and ranked[0].pending == 1 and ranked[0].failed == 0
    assert ranked[1].failed == 1 and ranked[1].values == (0.05,)
