"""WriteThroughStorage: reads from memory, writes to SQL first; the database is always complete."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import FloatDistribution, distribution_to_json
from optuna.trial import TrialState

import zoo
from groupwise.errors import StudyError
from groupwise.plan import component
from groupwise.sampling import partition_facts, sample
from groupwise.store import Ledger, StudyIdentity, _internals, open_storage
from groupwise.store._attrs import FINGERPRINT_ATTR
from groupwise.store._identity import create
from groupwise.store._migrate import migrate
from groupwise.store._mirror import WriteThroughStorage
from groupwise.studyfiles import SearchSpace
from test_storage_contract import snapshot

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACE = SearchSpace.model_validate(
    {
        "schemes": ["single", "module_type", {"name": "depth", "blocks": {"low": 2, "high": 3}}],
        "optimizers": {"adamw": {}, "sgd": {}},
    }
)


def run(study: optuna.Study, n: int = 24) -> list[dict]:
    """A study's life in miniature: sample, report, prune some, fail some, attrs."""
    facts = partition_facts(zoo.MyModel(), SPACE)
    seen = []
    for i in range(n):
        trial = study.ask()
        config = sample(trial, SPACE, facts)
        trial.set_user_attr("groupwise.config", config.to_json())
        value = sum(g.hyperparameters["lr"] for g in config.groups.values())
        for step in (1, 2):
            trial.report(value * step, step)
        state = [TrialState.COMPLETE, TrialState.PRUNED, TrialState.COMPLETE, TrialState.FAIL][
            i % 4
        ]
        study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
        seen.append(dict(trial.params))
    return seen


TPE = component("sampler", "tpe", {"n_startup_trials": 5}, "test", seed=3)


def tpe():
    return TPE.build()


def opened(url: str, identity: StudyIdentity) -> Ledger:
    """Open a study as a driver does."""
    return Ledger.open(
        url,
        identity,
        sampler=TPE,
        pruner=component("pruner", "none", {}, "test"),
        heartbeat=(10, 60),
        max_retries=0,
        driver="test",
    )


def test_same_samples_and_same_database_as_plain_sql(tmp_path, storage_url):
    plain = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path}/a.db", sampler=tpe())
    backend = open_storage(storage_url, create=True)
    optuna.create_study(study_name="s", storage=backend)
    mirrored = optuna.load_study(
        study_name="s", storage=WriteThroughStorage(backend, "s"), sampler=tpe()
    )

    assert run(plain) == run(mirrored)
    in_db = optuna.load_study(study_name="s", storage=storage_url).get_trials()
    assert snapshot(in_db) == snapshot(plain.get_trials())
    assert snapshot(in_db) == snapshot(mirrored.get_trials())


def test_a_mirror_of_an_existing_study_continues_it(storage_url):
    url = storage_url
    first = optuna.create_study(study_name="s", storage=url, sampler=tpe())
    run(first, n=6)
    first.set_user_attr("groupwise.task", "x")
    mirror = WriteThroughStorage(open_storage(url), "s")
    study = optuna.load_study(study_name="s", storage=mirror, sampler=tpe())
    assert snapshot(study.get_trials()) == snapshot(first.get_trials())
    assert study.user_attrs == {"groupwise.task": "x"}
    run(study, n=4)
    assert [t.number for t in optuna.load_study(study_name="s", storage=url).get_trials()] == list(
        range(10)
    )


def test_a_refused_write_changes_neither_side(storage_url):
    backend = open_storage(storage_url, create=True)
    optuna.create_study(study_name="s", storage=backend)
    mirror = WriteThroughStorage(backend, "s")
    study = optuna.load_study(study_name="s", storage=mirror)
    trial = study.ask()
    study.tell(trial, 1.0)
    with pytest.raises(RuntimeError):  # optuna refuses to update a finished trial
        mirror.set_trial_user_attr(trial._trial_id, "late", 1)
    assert "late" not in mirror.get_trial(trial._trial_id).user_attrs
    assert snapshot(mirror.get_all_trials(study._study_id)) == snapshot(
        optuna.load_study(study_name="s", storage=backend).get_trials()
    )


def test_only_its_own_study(storage_url):
    backend = open_storage(storage_url, create=True)
    optuna.create_study(study_name="s", storage=backend)
    mirror = WriteThroughStorage(backend, "s")
    with pytest.raises(Exception, match="mirrors one study"):
        mirror.set_study_user_attr(mirror.get_study_id_from_name("s") + 1, "k", 1)


def test_a_heartbeat_left_by_a_deleted_study_does_not_block_its_successor(storage_url):
    """A launch still beating for a study deleted under it leaves a heartbeat row behind
    (Optuna inserts one without checking the trial exists); SQLite gives the next study's first
    trial the same id, so that trial's own first heartbeat must replace the row, not collide."""
    backend = open_storage(storage_url, create=True, heartbeat=(10, 60))
    optuna.create_study(study_name="s", storage=backend)
    mirror = WriteThroughStorage(backend, "s")
    with mirror.transaction():
        optuna.load_study(study_name="s", storage=mirror).ask()
    (first,) = optuna.load_study(study_name="s", storage=backend).get_trials()
    old_id = first._trial_id
    optuna.delete_study(study_name="s", storage=backend)
    backend.record_heartbeat(old_id)  # the launch that did not yet notice

    optuna.create_study(study_name="s", storage=backend)
    mirror = WriteThroughStorage(backend, "s")
    with mirror.transaction():  # as a launch opens trials: the trial and its first beat at once
        optuna.load_study(study_name="s", storage=mirror).ask()
    (trial,) = optuna.load_study(study_name="s", storage=backend).get_trials()
    assert trial.state == TrialState.RUNNING
    beating = _internals.with_heartbeat(backend, mirror.backend_study)
    assert mirror.numbers_of(beating) == {trial.number}


def test_a_new_study_does_not_adopt_the_rows_its_deleted_namesake_left(tmp_path):
    """On SQLite, Optuna deletes a study by the trials it read first, and no foreign key stops
    a racing launch: a trial inserted meanwhile, or a parameter written for a trial already
    deleted, outlives the study. SQLite gives the next study (and its trials) the same ids, so
    a new study of the same name must not start with those rows as its own (seen in CI: the
    relaunch's mirror met a 'trial 3' of the deleted study)."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    backend = open_storage(url, create=True)
    run(optuna.create_study(study_name="s", storage=backend), n=3)
    old = backend.get_study_id_from_name("s")
    last = max(t._trial_id for t in optuna.load_study(study_name="s", storage=backend).trials)
    optuna.delete_study(study_name="s", storage=backend)
    with backend.engine.begin() as connection:  # what the racing launch wrote
        connection.exec_driver_sql(
            "INSERT INTO trials (study_id, number, state) VALUES (?, 3, 'RUNNING')", (old,)
        )
        connection.exec_driver_sql(
            "INSERT INTO trial_params (trial_id, param_name, param_value, distribution_json) "
            "VALUES (?, 'stray', 0.5, ?)",
            (last, distribution_to_json(FloatDistribution(0.0, 1.0))),
        )
    ledger = opened(url, StudyIdentity("s", "minimize", "f", "loss", "t", "space", {}))
    assert backend.get_study_id_from_name("s") == old  # the id reused: what makes this a test
    study = optuna.load_study(study_name="s", storage=backend)
    assert study.trials == []
    with backend.engine.connect() as connection:
        (params,) = connection.exec_driver_sql("SELECT COUNT(*) FROM trial_params").one()
    assert params == 0
    assert ledger.mirror.get_all_trials(ledger.mirror.get_study_id_from_name("s")) == []


def test_a_new_study_is_claimed_in_the_transaction_that_creates_it(storage_url):
    """Two drivers opening one brand-new study from different study files: the creator stamps
    its identity as it creates the study, so the other, opening between that and the
    creator's own checks, is refused instead of stamping the study as its own."""
    ours = StudyIdentity("s", "minimize", "f1", "loss", "t", "space", {"seed": 0})
    theirs = StudyIdentity("s", "minimize", "f2", "loss", "t", "space", {"seed": 1})
    storage = open_storage(storage_url, create=True)
    migrate(storage.engine)
    create(storage, ours)  # the creator's step alone, paused here
    with pytest.raises(StudyError, match="differs in these fields"):
        opened(storage_url, theirs)
    assert opened(storage_url, ours).study.user_attrs[FINGERPRINT_ATTR] == "f1"
