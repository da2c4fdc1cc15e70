"""``workers.batch``: studies whose workers train K candidates at once, on a real local Ray
cluster and a real database. Each candidate is its own trial, recorded as if it had trained
alone: its epochs are those ``Trainer`` gives its config (float tolerance: see
test_batched.py), its pruning and its ending are its own, and the budget counts it once."""

from __future__ import annotations

import logging
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from groupwise.config import TrialConfig
from groupwise.execution import launch
from groupwise.studyfiles import read_study
from groupwise.tasks import resolve_task
from groupwise.training import Trainer, TrainingOptions

pytestmark = pytest.mark.usefixtures("ray_local")

SPACE = """
schemes: [single, module_type]
optimizers:
  adamw:
    lr: {low: 1.0e-3, high: 3.0e-2, log: true}
    weight_decay: {low: 1.0e-4, high: 0.1, log: true}
  sgd: {lr: {low: 1.0e-2, high: 0.5, log: true}, momentum: 0.9}
"""


def study_file(
    tmp_path: Path,
    *,
    space: str = SPACE,
    trials: int = 8,
    batch: int = 4,
    pruner: str = "none",
    task: str = "user_tasks:tiny",
) -> Path:
    (tmp_path / "space.yaml").write_text(space)
    path = tmp_path / "b.yaml"
    path.write_text(
        f"name: b\ntask: {task}\nsearch_space: space.yaml\nbudget: {{trials: {trials}}}\n"
        "training: {epochs: 3, batch_size: 32}\nsampler: {name: tpe, options: "
        "{n_startup_trials: 2}}\n"
        f"pruner: {pruner}\nworkers: {{count: 1, batch: {batch}}}\nseed: 0\n"
    )
    return path


def trials_of(url: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name="b", storage=url).get_trials()


def alone(trial: optuna.trial.FrozenTrial) -> list[float]:
    """The trial's config trained alone, as a worker of batch 1 would: its val_loss per epoch."""
    task = resolve_task("user_tasks:tiny", {}, seed=0)
    config = TrialConfig.from_json(trial.user_attrs["groupwise.config"])
    trainer = Trainer(task, config, seed=0, options=TrainingOptions(epochs=3, batch_size=32))
    return [trainer.run_epoch().metrics["val_loss"] for _ in trial.intermediate_values]


def test_each_candidate_of_a_batch_is_its_own_trial_as_if_alone(tmp_path, storage_url):
    result = launch(
        read_study(
            study_file(
                tmp_path, pruner="{name: median, options: {n_startup_trials: 2, n_warmup_steps: 1}}"
            )
        ),
        storage=storage_url,
    )
    trials = trials_of(storage_url)
    assert len(trials) == 8 and result.ran == 8
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    batched = [t for t in trials if t.user_attrs["groupwise.run"]["training"]["batched"] > 1]
    assert batched, "no trial trained in a batch"
    for t in trials:
        values = [t.intermediate_values[e] for e in sorted(t.intermediate_values)]
        assert values == pytest.approx(alone(t), rel=1e-5), t.number
        if t.state == TrialState.COMPLETE:
            assert t.value == values[-1]
    # the first trial of each worker's batch leads it; the others keep its structure
    for t in trials:
        lead = t.user_attrs.get("groupwise.batch_of")
        if lead is not None:
            leader = TrialConfig.from_json(trials[lead].user_attrs["groupwise.config"])
            mine = TrialConfig.from_json(t.user_attrs["groupwise.config"])
            assert mine.scheme == leader.scheme
            assert {k: g.optimizer for k, g in mine.groups.items()} == {
                k: g.optimizer for k, g in leader.groups.items()
            }


def test_a_relaunch_continues_and_leaves_nothing_queued(tmp_path, storage_url):
    path = study_file(tmp_path, trials=6)
    launch(read_study(path), storage=storage_url)
    first = [(t.number, t.value) for t in trials_of(storage_url)]
    assert len(first) == 6  # a batch of 4, then one of 2: the budget caps the companions
    result = launch(read_study(path).with_overrides(trials=9), storage=storage_url)
    trials = trials_of(storage_url)
    assert result.ran == 3 and [(t.number, t.value) for t in trials[:6]] == first
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 9  # none left WAITING


def test_what_cannot_batch_trains_alone_and_says_why_once(tmp_path, caplog):
    space = "schemes: [single]\noptimizers:\n  rmsprop: {lr: {low: 1.0e-3, high: 1.0e-2}}\n"
    url = f"sqlite:///{tmp_path}/b.db"
    with caplog.at_level(logging.WARNING, logger="groupwise"):
        launch(read_study(study_file(tmp_path, space=space, trials=4)), storage=url)
    trials = trials_of(url)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    assert {t.user_attrs["groupwise.run"]["training"]["batched"] for t in trials} == {1}
    said = [r.getMessage() for r in caplog.records if "workers.batch" in r.getMessage()]
    assert said == [
        "workers.batch: some trials train one at a time: groups.all: optimizer 'rmsprop' has "
        "no batched step (batched: ['adam', 'adamw', 'muon', 'nadam', 'nadamw', 'sgd'])"
    ]
    for t in trials:
        assert [t.intermediate_values[e] for e in (1, 2, 3)] == pytest.approx(alone(t), rel=1e-6)


def test_a_function_task_is_never_batched_and_says_so(tmp_path, caplog):
    (tmp_path / "space.yaml").write_text(SPACE)
    path = tmp_path / "fn.yaml"
    path.write_text(
        "name: b\ntask: {train: 'user_functions:train'}\nsearch_space: space.yaml\n"
        "budget: {trials: 2}\ntraining: {epochs: 2}\nworkers: {count: 1, batch: 4}\nseed: 0\n"
    )
    url = f"sqlite:///{tmp_path}/b.db"
    with caplog.at_level(logging.WARNING, logger="groupwise"):
        result = launch(read_study(path), storage=url)
    assert result.ran == 2
    said = [r.getMessage() for r in caplog.records if "workers.batch" in r.getMessage()]
    assert len(said) == 1 and "function task" in said[0] and "one at a time" in said[0]


def test_memory_admission_counts_every_candidate_of_a_worker(tmp_path):
    from groupwise.execution._launch import _memory_budget, _pool
    from groupwise.execution._slots import BatchedPool

    (tmp_path / "space.yaml").write_text(SPACE)
    path = tmp_path / "m.yaml"
    for batch, per_trial in ((1, 64), (4, 64)):
        path.write_text(
            "name: m\ntask: user_tasks:tiny\nsearch_space: space.yaml\nbudget: {trials: 1}\n"
            f"workers: {{count: 1, batch: {batch}, memory_per_trial_mb: {per_trial}}}\n"
        )
        spec = read_study(path)
        pool = _pool(spec, None)
        assert isinstance(pool, BatchedPool) == (batch > 1)
        assert pool.capacity == batch
        # the setting is per trial: each candidate is admitted against it
        assert _memory_budget(spec, pool) == 64 * 2**20
