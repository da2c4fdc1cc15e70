"""The driver against a real local Ray cluster and a real SQLite database."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from groupwise import build_optimizer, load_best
from groupwise.config import TrialConfig
from groupwise.errors import SpecError, StudyError
from groupwise.execution import launch
from groupwise.studyfiles import read_study
from groupwise.tasks import resolve_task

pytestmark = pytest.mark.usefixtures("ray_local")

SPACE = """
schemes: [single, module_type, {name: depth, blocks: {low: 2, high: 2}}]
optimizers:
  adamw: {lr: {low: 1.0e-3, high: 3.0e-2, log: true}}
  sgd: {lr: {low: 1.0e-2, high: 0.5, log: true}, momentum: 0.9}
"""


def make_study(
    tmp_path: Path,
    name="s",
    space=SPACE,
    task="user_tasks:tiny",
    trials=6,
    epochs=3,
    pruner="none",
    sampler="{name: random}",
    workers=2,
) -> Path:
    (tmp_path / f"{name}_space.yaml").write_text(space)
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"name: {name}\ntask: {task}\nsearch_space: {name}_space.yaml\n"
        f"budget: {{trials: {trials}}}\ntraining: {{epochs: {epochs}, batch_size: 32}}\n"
        f"sampler: {sampler}\npruner: {pruner}\nworkers: {{count: {workers}}}\nseed: 0\n"
    )
    return path


def trials_of(db: str, name="s"):
    return optuna.load_study(study_name=name, storage=db).get_trials()


def test_launch_records_every_trial_with_its_config(tmp_path, storage_url):
    db = storage_url
    result = launch(read_study(make_study(tmp_path)), storage=db)
    trials = trials_of(db)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 6
    assert result.ran == 6 and result.progress.complete == 6
    model = resolve_task("user_tasks:tiny").build_model()
    for t in trials:
        config = TrialConfig.from_json(t.user_attrs["groupwise.config"])
        assert json.loads(t.user_attrs["groupwise.config"]) == config.to_dict()
        build_optimizer(model, config)
        assert sorted(t.intermediate_values) == [1, 2, 3]
        assert t.value == t.intermediate_values[3]
        run = t.user_attrs["groupwise.run"]
        assert run["device"] == "cpu" and run["host"] and run["pid"] and run["wall_s"] > 0
    assert len({t.user_attrs["groupwise.run"]["pid"] for t in trials}) == 2  # both workers
    best = min(trials, key=lambda t: t.value)
    assert load_best("s", storage=db) == TrialConfig.from_json(best.user_attrs["groupwise.config"])
    assert result.best_config == load_best("s", storage=db)


def test_a_second_launch_continues_the_study(tmp_path, storage_url):
    db = storage_url
    path = make_study(tmp_path, trials=3)
    launch(read_study(path), storage=db)
    first = [(t.number, t.value) for t in trials_of(db)]
    result = launch(read_study(path).with_overrides(trials=5), storage=db)
    trials = trials_of(db)
    assert len(trials) == 5 and result.ran == 2
    assert [(t.number, t.value) for t in trials[:3]] == first  # nothing redone or lost
    again = launch(read_study(path).with_overrides(trials=5), storage=db)
    assert again.ran == 0 and len(trials_of(db)) == 5  # the budget is a total


def test_the_pruner_prunes_and_pruned_trials_keep_their_curves(tmp_path):
    db = f"sqlite:///{tmp_path}/g.db"
    space = SPACE.replace(
        "{low: 1.0e-3, high: 3.0e-2, log: true}", "{low: 1.0e-6, high: 3.0e-2, log: true}"
    )
    pruner = "{name: median, options: {n_startup_trials: 2, n_warmup_steps: 0}}"
    launch(
        read_study(make_study(tmp_path, space=space, trials=14, epochs=4, pruner=pruner)),
        storage=db,
    )
    trials = trials_of(db)
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert pruned, "a median pruner with no warm-up pruned nothing over lrs spanning 4 decades"
    assert len(pruned) + len(complete) == 14
    for t in pruned:
        assert 1 <= len(t.intermediate_values) < 4
    for t in complete:
        assert sorted(t.intermediate_values) == [1, 2, 3, 4]


def test_a_diverging_trial_is_recorded_and_the_study_completes(tmp_path):
    db = f"sqlite:///{tmp_path}/g.db"
    space = SPACE.replace(
        "sgd: {lr: {low: 1.0e-2, high: 0.5, log: true}, momentum: 0.9}",
        "sgd: {lr: {low: 1.0e+6, high: 1.0e+8, log: true}}",
    )
    launch(read_study(make_study(tmp_path, space=space, trials=8)), storage=db)
    trials = trials_of(db)
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(trials) == 8
    assert failed and any(t.state == TrialState.COMPLETE for t in trials)
    for t in failed:
        assert t.user_attrs["groupwise.fail_reason"].startswith("diverged: ")
        config = TrialConfig.from_json(t.user_attrs["groupwise.config"])
        assert any(g.optimizer == "sgd" for g in config.groups.values())


def test_an_exception_in_a_trial_fails_that_trial_only(tmp_path, storage_url):
    db = storage_url
    launch(
        read_study(make_study(tmp_path, task="user_tasks:every_other_fails", trials=6)), storage=db
    )
    trials = trials_of(db)
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(trials) == 6
    assert failed and len(failed) < 6
    for t in failed:
        assert (
            "RuntimeError: boom: this model fails on purpose"
            in t.user_attrs["groupwise.fail_reason"]
        )


def test_the_same_training_is_not_run_twice_nor_counted(tmp_path):
    """Every config of this space trains identically. Repeats reuse the first result and
    spend no budget; when nothing new is left the launch says so and stops."""
    from groupwise.execution._driver import REPEATS_IN_A_ROW

    db = f"sqlite:///{tmp_path}/g.db"
    space = (
        "schemes: [single, module_type, decay_split]\n"
        "optimizers: {sgd: {lr: 0.05, momentum: 0.9}}\n"
    )
    result = launch(read_study(make_study(tmp_path, space=space, trials=5)), storage=db)
    trials = trials_of(db)
    originals = [t for t in trials if "groupwise.duplicate_of" not in t.user_attrs]
    copies = [t for t in trials if "groupwise.duplicate_of" in t.user_attrs]
    assert len({t.user_attrs["groupwise.canonical"] for t in trials}) == 1
    # at most one trial per worker trains before the first result comes back
    assert 1 <= len(originals) <= 2
    assert len(copies) == REPEATS_IN_A_ROW
    assert all(t.value == originals[0].value and t.state == TrialState.COMPLETE for t in copies)
    assert result.progress.finished == result.ran == len(originals)  # no budget spent on copies
    assert result.progress.counts.replayed == REPEATS_IN_A_ROW
    assert "nothing new left to try" in result.note


def test_a_relaunch_continues_the_search_instead_of_replaying_it(tmp_path, storage_url):
    """Each launch seeds its sampler from the study's seed and what the study already holds,
    so a resumed study proposes new configs, not the first launch's again."""
    path = make_study(tmp_path, trials=6, sampler="random")
    launch(read_study(path), storage=storage_url)
    launch(read_study(path).with_overrides(trials=12), storage=storage_url)
    trials = trials_of(storage_url)
    assert not any("groupwise.duplicate_of" in t.user_attrs for t in trials)
    assert len({t.user_attrs["groupwise.canonical"] for t in trials}) == len(trials) == 12


def test_a_launch_whose_first_trials_all_fail_alike_stops_and_spends_no_budget(tmp_path):
    """A task broken where it runs (it passes the launch's own check): the first 5 trials
    fail alike and the launch stops with the reason. Those failures are the task's, not the
    configs': voided, they spend none of the budget, so the relaunch after the fix runs the
    whole budget (before, it ran 3 of 8)."""
    db = f"sqlite:///{tmp_path}/g.db"
    marker = tmp_path / "broken"
    marker.write_text("")
    task = f"{{name: 'user_tasks:broken_while', options: {{marker: '{marker}'}}}}"
    path = make_study(tmp_path, task=task, trials=8)
    with pytest.raises(StudyError, match=r"first 5 trials of this launch all failed .*mounted"):
        launch(read_study(path), storage=db)
    failed = [t for t in trials_of(db) if t.state == TrialState.FAIL]
    lost = [t for t in failed if t.user_attrs.get("groupwise.retried")]  # in flight at the stop
    assert len(failed) - len(lost) == 5
    from groupwise.analysis import study_status

    (stopped,) = study_status(db, "s")
    assert stopped.counts.voided == 5 and stopped.counts.failed == stopped.counts.finished == 0
    marker.unlink()  # the fix
    result = launch(read_study(path), storage=db)
    assert result.progress.finished == result.ran == 8 and result.progress.complete == 8
    assert result.progress.counts.voided == 5


def test_a_model_that_cannot_train_is_one_line_before_anything_runs(tmp_path):
    """A forward that raises is found by the launch's (and validate's) one training step on
    a few samples, with the file and line that raised: no Ray, no database, no trial."""
    db = tmp_path / "g.db"
    path = make_study(tmp_path, task="user_tasks:always_fails", trials=8)
    with pytest.raises(SpecError) as raised:
        launch(read_study(path), storage=f"sqlite:///{db}")
    message = str(raised.value)
    assert "task 'user_tasks:always_fails': a training step on 4 samples failed" in message
    assert "RuntimeError: boom: this model fails on purpose" in message
    assert "user_tasks.py:" in message and "\n" not in message
    assert not db.exists()


def test_bad_input_writes_nothing(tmp_path):
    db = tmp_path / "g.db"
    path = make_study(tmp_path, task="user_tasks:not_a_task")
    with pytest.raises(SpecError):
        launch(read_study(path), storage=f"sqlite:///{db}")
    assert not db.exists()


def test_another_study_file_under_the_same_name_is_refused(tmp_path):
    db = f"sqlite:///{tmp_path}/g.db"
    launch(read_study(make_study(tmp_path, trials=1, epochs=1)), storage=db)
    changed = make_study(tmp_path, trials=2, epochs=2)
    with pytest.raises(StudyError, match=r"differs in these fields .*training.epochs: 1 -> 2"):
        launch(read_study(changed), storage=db)
    assert len(trials_of(db)) == 1


def test_more_workers_than_the_cluster_has_is_refused_before_any_write(tmp_path):
    db = f"sqlite:///{tmp_path}/g.db"
    with pytest.raises(StudyError, match=r"workers: 5 x \(1.0 CPU, 0.0 GPU\) needs 5 CPU"):
        launch(read_study(make_study(tmp_path, workers=5)), storage=db)
    assert not (tmp_path / "g.db").exists()


def test_a_time_budget_stops_starting_trials(tmp_path):
    db = f"sqlite:///{tmp_path}/g.db"
    path = make_study(tmp_path, trials=1000, epochs=1)
    text = path.read_text().replace("budget: {trials: 1000}", "budget: {time_s: 4}")
    path.write_text(text)
    result = launch(read_study(path), storage=db)  # it returns: the budget ended it
    assert 1 <= result.progress.finished < 1000  # the clock starts with the first ready worker
    assert all(t.state == TrialState.COMPLETE for t in trials_of(db))


def test_a_lost_worker_reason_names_the_actors_own_error():
    from groupwise.execution._pool import _cause

    ray_text = (
        "The actor died because of an error raised in its creation task\n"
        "  ^^^^^^^^\n"
        "RuntimeError: The actor with name _RayWorker failed to import on the worker.\n"
        "ModuleNotFoundError: No module named 'groupwise'"
    )
    assert _cause(RuntimeError(ray_text)) == " (ModuleNotFoundError: No module named 'groupwise')"
    assert _cause(RuntimeError("the node died")) == ""


def test_in_a_reproducible_round_the_pruner_never_sees_a_round_mate(tmp_path):
    """Round one: a hare (quick, good) and a tortoise (slow, far worse) start together; the
    hare completes first. Judged against it the tortoise would be pruned, but only because it
    was slower: it must complete. Round two's tortoises are judged against round one and
    pruned."""
    path = make_study(
        tmp_path,
        task=f"{{name: 'user_tasks:race', options: {{marker: '{tmp_path / 'hare'}'}}}}",
        trials=4,
        epochs=2,
        pruner="{name: median, options: {n_startup_trials: 1, n_warmup_steps: 0}}",
    )
    path.write_text(
        path.read_text()
        .replace("workers: {count: 2}", "workers: {count: 2, reproducible: true}")
        .replace("batch_size: 32}", "batch_size: 32, steps_per_epoch: 2}")
    )
    db = f"sqlite:///{tmp_path}/g.db"
    launch(read_study(path), storage=db)
    trials = trials_of(db)
    first, second = trials[:2], trials[2:]
    assert [t.state for t in first] == [TrialState.COMPLETE] * 2, [t.state for t in first]
    assert sorted(t.value for t in first)[1] > 10 * sorted(t.value for t in first)[0]  # a race
    assert [t.state for t in second] == [TrialState.PRUNED] * 2


def test_reproducible_dispatch_gives_the_same_study_twice(tmp_path):
    """workers.reproducible: rounds of trials, each started once the last has finished, so
    two runs of one study file and seed record the same trials, values and prunings, however
    the workers' timing falls."""
    runs = []
    for run in ("a", "b"):
        directory = tmp_path / run
        directory.mkdir()
        path = make_study(
            directory,
            trials=8,
            epochs=3,
            sampler="{name: tpe, options: {n_startup_trials: 3}}",
            pruner="{name: median, options: {n_startup_trials: 2, n_warmup_steps: 0}}",
        )
        path.write_text(
            path.read_text().replace(
                "workers: {count: 2}", "workers: {count: 2, reproducible: true}"
            )
        )
        launch(read_study(path), storage=f"sqlite:///{directory}/g.db")
        trials = trials_of(f"sqlite:///{directory}/g.db")
        runs.append([(t.number, t.state, t.params, t.value, t.intermediate_values) for t in trials])
    assert runs[0] == runs[1]
    assert len(runs[0]) == 8


def test_the_search_seed_does_not_split_the_data_again(tmp_path):
    """The study's seed is the search's (sampler, initialisation, batch order); the task's
    data comes from task.data_seed, fixed by default, so two seeds of a search search the same
    problem. A study whose seed was its data's (before data_seed existed) keeps its identity;
    studies on other data say so when compared."""
    from groupwise.analysis import compare_studies
    from groupwise.plan import identity
    from groupwise.store import epochs_of

    db = f"sqlite:///{tmp_path}/g.db"
    seen = {}
    for name, seed, data in (("a", 0, None), ("b", 3, None), ("c", 3, 5)):
        task = (
            "{name: 'user_tasks:seeded'"
            + (f", data_seed: {data}" if data is not None else "")
            + "}"
        )
        path = make_study(tmp_path, name=name, task=task, trials=2, epochs=1)
        path.write_text(path.read_text().replace("seed: 0", f"seed: {seed}"))
        spec = read_study(path)
        launch(spec, storage=db)
        seen[name] = {e["metrics"]["val_data_seed"] for e in epochs_of(db, name)}
        assert ("data_seed" in identity(spec)["task"]) == (spec.task.data_seed != seed)
    assert seen == {"a": {0.0}, "b": {0.0}, "c": {5.0}}
    a, b, c = compare_studies(["a", "b", "c"], db)
    assert a.task_differs == b.task_differs == ""  # same data, another search seed
    assert c.task_differs == "data_seed: 0 -> 5"


# Fingerprints of shipped study files as groupwise 93aec64 (2026-12-04) computed them: a study
# launched then must be resumed by this version, not refused as another study. Keys a study
# file gained since (a space's roles, a task's data_seed) are left out of the identity where
# they mean "as before" (plan.LATER_KEYS).
BEFORE = {"quickstart.yaml": "11344039a2adf8d3", "tiny_transformer.yaml": "c4c82b8d85f84396"}


@pytest.mark.parametrize("name", sorted(BEFORE))
def test_a_study_launched_by_an_earlier_groupwise_keeps_its_fingerprint(name):
    """The study files and their spaces as 93aec64 shipped them (tests/data/before: copies,
    since the shipped ones have moved on)."""
    from groupwise.plan import fingerprint

    path = Path(__file__).resolve().parent / "data" / "before" / "studies" / name
    assert fingerprint(read_study(path)) == BEFORE[name]


def test_a_study_trains_with_its_schedule_and_training_options(tmp_path):
    """A space's schedule and a study's training options, through a real launch: each trial's
    lr follows its schedule from its peak (each epoch's recorded lr is the shape's value at
    that step), the config records the schedule and the study's clip norm (so an export
    trains as its trial did), and each run records how it trained."""
    from groupwise.schedules import Schedule
    from groupwise.store import epochs_of, runs_of

    space = (
        "schemes: [single, module_type]\n"
        "optimizers: {adamw: {lr: {low: 1.0e-3, high: 3.0e-2, log: true}}}\n"
        "schedule:\n  warmup: {low: 0.0, high: 0.2}\n  decay: {choices: [cosine, wsd]}\n"
        "  final_lr_fraction: 0.1\n"
    )
    path = make_study(tmp_path, space=space, trials=4, epochs=3)
    text = path.read_text().replace(
        "training: {epochs: 3, batch_size: 32}",
        "training: {epochs: 3, batch_size: 16, steps_per_epoch: 4, accumulate: 2, "
        "precision: bf16, grad_clip_norm: 0.5}",
    )
    path.write_text(text)
    db = f"sqlite:///{tmp_path}/g.db"
    result = launch(read_study(path), storage=db)
    assert result.best_config.schedule is not None and result.best_config.grad_clip_norm == 0.5
    configs = {
        t.number: TrialConfig.from_json(t.user_attrs["groupwise.config"]) for t in trials_of(db)
    }
    for epoch in epochs_of(db, "s"):
        config = configs[epoch["trial"]]
        schedule = config.schedule
        assert isinstance(schedule, Schedule) and config.grad_clip_norm == 0.5
        step = min(epoch["epoch"] * 4, 11)  # the lr recorded at the epoch's end: the next step's
        for label, lr in epoch["lrs"].items():
            peak = config.groups[label].hyperparameters["lr"]
            assert lr == pytest.approx(peak * schedule.multiplier(step, 12), rel=1e-9)
    from groupwise.analysis import best_table, best_trials, compare

    by_schedule = compare("s", db).by_schedule  # the schedule is part of compare and best
    assert {r.schedule for r in by_schedule} <= {"cosine", "wsd"}
    assert sum(r.complete for r in by_schedule) == 4
    (row,) = best_table(best_trials("s", db)).rows
    assert "final_lr_fraction 0.1" in row[-1] and "clip 0.5" in row[-1]
    for run in runs_of(db, "s"):
        assert run["training"] == {
            "precision": "bf16",
            "accumulate": 2,
            "grad_clip_norm": 0.5,
            "compile": False,
            "compile_s": None,
            "total_steps": 12,
        }
