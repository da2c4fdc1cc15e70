"""Warm starts, for real: recipes enqueued before the sampler proposes, and an earlier study's
finished trials copied in for the sampler to learn from."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from groupwise.errors import StudyError
from groupwise.execution import launch
from groupwise.store import SEEDED_ATTR, open_storage, study_names, tally
from groupwise.store._attrs import RECIPE_ATTR
from groupwise.studyfiles import read_study

pytestmark = pytest.mark.usefixtures("ray_local")

RELATIVE = """
schemes: [single, decay_split]
optimizers: {adamw: {}}
sharing: {relative: {}}
warm_start: [adamw, decay_split]
"""


def study(
    tmp_path: Path,
    name: str,
    trials: int,
    space: str = RELATIVE,
    extra: str = "",
    workers: str = "{count: 2}",
) -> Path:
    (tmp_path / f"{name}_space.yaml").write_text(space)
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"name: {name}\ntask: user_tasks:tiny\nsearch_space: {name}_space.yaml\n"
        f"budget: {{trials: {trials}}}\ntraining: {{epochs: 2, batch_size: 32}}\n"
        f"sampler: random\npruner: none\nworkers: {workers}\nseed: 0\n{extra}"
    )
    return path


def trials(db: str, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=db).get_trials()


ROUNDS = "{count: 2, reproducible: true}"


def test_recipes_are_the_first_trials_and_a_relaunch_does_not_repeat_them(tmp_path):
    db = f"sqlite:///{tmp_path}/g.db"
    path = study(tmp_path, "s", trials=4)
    launch(read_study(path), storage=db)
    first = trials(db, "s")
    assert [t.user_attrs.get(RECIPE_ATTR) for t in first[:2]] == ["adamw", "decay_split"]
    assert first[0].params["scheme"] == "single" and first[0].params["lr"] == 1e-3
    assert first[1].params["no_decay.decay"] is False and first[1].params["decay.decay"] is True
    assert first[1].params["lr"] == 1e-3  # no lr sweep listed: nothing to follow
    launch(read_study(path).with_overrides(trials=6), storage=db)
    recipes = [t.user_attrs.get(RECIPE_ATTR) for t in trials(db, "s")]
    assert recipes.count("adamw") == 1 and recipes.count("decay_split") == 1


SWEEP = RELATIVE.replace("[adamw, decay_split]", "[adamw, lr_sweep, decay_split]")


def test_structural_recipes_run_at_the_best_lr_of_the_sweep_before_them(tmp_path):
    db = f"sqlite:///{tmp_path}/g.db"
    path = study(tmp_path, "w", 6, space=SWEEP, workers=ROUNDS)
    launch(read_study(path), storage=db)
    done = trials(db, "w")
    recipes = [t.user_attrs.get(RECIPE_ATTR) for t in done[:5]]
    assert recipes == ["adamw", "lr_sweep", "lr_sweep", "lr_sweep", "decay_split"]
    assert [t.params["lr"] for t in done[:4]] == pytest.approx([1e-3, 3e-4, 3e-3, 1e-2])
    assert all(t.params["scheme"] == "single" for t in done[:4])
    best = min(done[:4], key=lambda t: t.value)
    assert done[4].params["lr"] == best.params["lr"]
    assert done[4].datetime_start >= max(t.datetime_complete for t in done[:4])
    launch(read_study(path).with_overrides(trials=8), storage=db)  # followed once
    assert [t.user_attrs.get(RECIPE_ATTR) for t in trials(db, "w")].count("decay_split") == 1


def test_in_an_absolute_space_the_recipes_keep_their_own_lrs_and_go_in_order(tmp_path):
    db = f"sqlite:///{tmp_path}/g.db"
    space = (
        "schemes: [single, decay_split]\nwarm_start: [lr_sweep, decay_split]\noptimizers: "
        "{adamw: {lr: {low: 1.0e-4, high: 0.1, log: true}, weight_decay: {low: 0.0, high: 0.3}}}\n"
    )
    launch(read_study(study(tmp_path, "a", 4, space=space, workers=ROUNDS)), storage=db)
    done = trials(db, "a")
    recipes = [t.user_attrs.get(RECIPE_ATTR) for t in done]
    assert recipes == ["lr_sweep", "lr_sweep", "lr_sweep", "decay_split"]
    assert done[3].params["decay.lr"] == 1e-3 and done[3].params["no_decay.lr"] == 1e-3


def test_an_earlier_study_seeds_the_sampler_without_spending_budget(tmp_path):
    db = f"sqlite:///{tmp_path}/g.db"
    launch(read_study(study(tmp_path, "a", trials=5)), storage=db)
    done = [t for t in trials(db, "a") if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    path = study(tmp_path, "b", trials=3, extra="warm_start: {recipes: [], studies: [a]}\n")
    result = launch(read_study(path), storage=db)

    seeded = [t for t in trials(db, "b") if SEEDED_ATTR in t.user_attrs]
    assert sorted(t.user_attrs[SEEDED_ATTR] for t in seeded) == sorted(
        f"a#{t.number}" for t in done
    )
    assert [(t.params, t.value) for t in seeded] == [(t.params, t.value) for t in done]
    counts = tally(trials(db, "b"), "minimize")
    assert counts.seeded == len(done) and counts.finished == 3 == result.progress.finished
    assert all(t.number != counts.best_trial for t in seeded)  # history, never b's best


def test_the_seeded_outcomes_are_reused_like_the_studys_own(tmp_path):
    """A space with one config: b's every proposal repeats what a trained, so b trains
    nothing itself and stops, having spent no budget."""
    one = "schemes: [single]\noptimizers: {sgd: {lr: 0.05, momentum: 0.9}}\n"
    db = f"sqlite:///{tmp_path}/g.db"
    launch(read_study(study(tmp_path, "a", trials=1, space=one)), storage=db)
    path = study(tmp_path, "b", trials=3, space=one, extra="warm_start: {studies: [a]}\n")
    result = launch(read_study(path), storage=db)
    assert result.ran == 0 and "nothing new left to try" in result.note
    assert all(t.user_attrs.get("groupwise.duplicate_of") == 0 for t in trials(db, "b")[1:])


def test_a_study_of_another_space_is_refused_before_anything_is_written(tmp_path):
    db = f"sqlite:///{tmp_path}/g.db"
    launch(read_study(study(tmp_path, "a", trials=2)), storage=db)
    other = RELATIVE.replace("[single, decay_split]", "[single, role]")
    path = study(tmp_path, "b", trials=2, space=other, extra="warm_start: {studies: [a]}\n")
    with pytest.raises(StudyError, match=r"study 'a' differs from this one in space\.schemes"):
        launch(read_study(path), storage=db)
    assert study_names(open_storage(db)) == ["a"]
