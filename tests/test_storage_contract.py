"""WriteThroughStorage held to Optuna's storage contract.

The behaviours Optuna's own storage test suite checks for every backend (attributes of
studies and trials, trial creation plain and from a template, parameters and their
distributions, states and values, intermediate values, what a finished trial refuses, reads
that hand out copies), run over plain RDBStorage and groupwise's mirror, each on SQLite and
PostgreSQL. After every test a fresh reader of the database must see exactly what the storage
under test says: the mirror may read from memory, but the database is always complete.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.exceptions import UpdateFinishedTrialError
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from groupwise.store import open_storage
from groupwise.store._mirror import WriteThroughStorage

optuna.logging.set_verbosity(optuna.logging.WARNING)

EXAMPLE_ATTRS = {
    "dataset": "MNIST",
    "none": None,
    "json_serializable": {"baseline_score": 0.001, "tags": ["image", "classification"]},
}
X = FloatDistribution(0.0, 1.0)


@pytest.fixture(params=["rdb", "mirror"])
def contract(request, storage_url) -> Iterator[tuple[optuna.storages.BaseStorage, int, str]]:
    """(storage under test, its study id, the database URL) for a fresh study 's'."""
    backend = open_storage(storage_url, create=True)
    backend.create_new_study([StudyDirection.MINIMIZE], "s")
    storage = backend if request.param == "rdb" else WriteThroughStorage(backend, "s")
    study_id = storage.get_study_id_from_name("s")
    yield storage, study_id, storage_url
    fresh = open_storage(storage_url)
    fresh_id = fresh.get_study_id_from_name("s")
    assert snapshot(fresh.get_all_trials(fresh_id)) == snapshot(storage.get_all_trials(study_id))
    assert fresh.get_study_user_attrs(fresh_id) == storage.get_study_user_attrs(study_id)
    assert fresh.get_study_system_attrs(fresh_id) == storage.get_study_system_attrs(study_id)


def snapshot(trials: list[FrozenTrial]) -> list[tuple]:
    return [
        (
            t.number,
            t.state,
            t.values,
            t.params,
            t.distributions,
            t.user_attrs,
            t.system_attrs,
            t.intermediate_values,
            t.datetime_start is not None,
            t.datetime_complete is not None,
        )
        for t in trials
    ]


def test_study_user_and_system_attrs(contract):
    storage, study_id, _ = contract
    for key, value in EXAMPLE_ATTRS.items():
        storage.set_study_user_attr(study_id, key, value)
        assert storage.get_study_user_attrs(study_id)[key] == value
    assert storage.get_study_user_attrs(study_id) == EXAMPLE_ATTRS
    storage.set_study_user_attr(study_id, "dataset", "ImageNet")  # overwrite
    assert storage.get_study_user_attrs(study_id)["dataset"] == "ImageNet"
    for key, value in EXAMPLE_ATTRS.items():
        storage.set_study_system_attr(study_id, key, value)
    assert storage.get_study_system_attrs(study_id) == EXAMPLE_ATTRS
    assert storage.get_study_directions(study_id) == [StudyDirection.MINIMIZE]
    assert storage.get_study_name_from_id(study_id) == "s"


def test_create_new_trial(contract):
    storage, study_id, _ = contract
    before = datetime.now()
    ids = [storage.create_new_trial(study_id) for _ in range(3)]
    trials = storage.get_all_trials(study_id)
    assert len(set(ids)) == 3 and [t.number for t in trials] == [0, 1, 2]
    for trial_id, trial in zip(ids, trials, strict=True):
        assert storage.get_trial_number_from_id(trial_id) == trial.number
        assert storage.get_trial_id_from_study_id_trial_number(study_id, trial.number) == trial_id
    assert all(t.state == TrialState.RUNNING for t in trials)
    assert all(not (t.params or t.user_attrs or t.intermediate_values) for t in trials)
    assert all(t.value is None and t.datetime_complete is None for t in trials)
    assert all(t.datetime_start is not None and t.datetime_start >= before for t in trials)


def test_create_new_trial_from_a_template(contract):
    storage, study_id, _ = contract
    template = FrozenTrial(
        number=55,  # ignored
        state=TrialState.COMPLETE,
        value=10000.0,
        datetime_start=datetime.now(),
        datetime_complete=datetime.now(),
        params={"x": 0.5, "n": 3, "c": "a"},
        distributions={"x": X, "n": IntDistribution(1, 5), "c": CategoricalDistribution("ab")},
        user_attrs={"foo": "bar"},
        system_attrs={"baz": 123},
        intermediate_values={1: 10.0, 2: 100.0, 3: 1000.0},
        trial_id=-1,
    )
    for i in range(3):
        trial_id = storage.create_new_trial(study_id, template_trial=template)
        trial = storage.get_trial(trial_id)
        assert trial.number == i
        assert (trial.state, trial.value, trial.params) == (
            template.state,
            template.value,
            template.params,
        )
        assert trial.distributions == template.distributions
        assert trial.user_attrs == template.user_attrs
        assert trial.system_attrs == template.system_attrs
        assert trial.intermediate_values == template.intermediate_values


def test_params_and_their_distributions(contract):
    storage, study_id, _ = contract
    first = storage.create_new_trial(study_id)
    storage.set_trial_param(first, "x", 0.5, X)
    storage.set_trial_param(first, "c", 1, CategoricalDistribution(("a", "b")))
    assert storage.get_trial(first).params == {"x": 0.5, "c": "b"}
    assert storage.get_trial_param(first, "x") == 0.5
    second = storage.create_new_trial(study_id)
    with pytest.raises(ValueError, match="different distribution"):  # a name already used
        storage.set_trial_param(second, "x", 0.5, IntDistribution(0, 3))
    storage.set_trial_state_values(first, TrialState.COMPLETE, [1.0])
    with pytest.raises(UpdateFinishedTrialError):
        storage.set_trial_param(first, "y", 0.1, X)


def test_states_and_values(contract):
    storage, study_id, _ = contract
    trial_id = storage.create_new_trial(study_id)
    assert storage.set_trial_state_values(trial_id, TrialState.RUNNING) is False  # already
    assert storage.set_trial_state_values(trial_id, TrialState.COMPLETE, [0.25]) is True
    trial = storage.get_trial(trial_id)
    assert trial.state == TrialState.COMPLETE and trial.value == 0.25
    assert trial.datetime_complete is not None
    with pytest.raises(UpdateFinishedTrialError):
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
    waiting = storage.create_new_trial(
        study_id,
        template_trial=optuna.trial.create_trial(state=TrialState.WAITING),
    )
    assert storage.set_trial_state_values(waiting, TrialState.RUNNING) is True
    assert storage.set_trial_state_values(waiting, TrialState.RUNNING) is False
    states = (TrialState.COMPLETE,)
    assert [t.number for t in storage.get_all_trials(study_id, states=states)] == [0]
    assert storage.get_best_trial(study_id).number == 0


def test_intermediate_values(contract):
    storage, study_id, _ = contract
    trial_id = storage.create_new_trial(study_id)
    storage.set_trial_intermediate_value(trial_id, 0, 0.3)
    storage.set_trial_intermediate_value(trial_id, 2, 0.4)
    storage.set_trial_intermediate_value(trial_id, 2, 0.2)  # overwrite
    assert storage.get_trial(trial_id).intermediate_values == {0: 0.3, 2: 0.2}
    storage.set_trial_state_values(trial_id, TrialState.PRUNED)
    with pytest.raises(UpdateFinishedTrialError):
        storage.set_trial_intermediate_value(trial_id, 3, 0.1)


def test_trial_user_and_system_attrs(contract):
    storage, study_id, _ = contract
    trial_id = storage.create_new_trial(study_id)
    for key, value in EXAMPLE_ATTRS.items():
        storage.set_trial_user_attr(trial_id, key, value)
        storage.set_trial_system_attr(trial_id, key, value)
    storage.set_trial_user_attr(trial_id, "dataset", "ImageNet")
    trial = storage.get_trial(trial_id)
    assert trial.user_attrs == {**EXAMPLE_ATTRS, "dataset": "ImageNet"}
    assert trial.system_attrs == EXAMPLE_ATTRS
    storage.set_trial_state_values(trial_id, TrialState.FAIL)
    with pytest.raises(UpdateFinishedTrialError):
        storage.set_trial_user_attr(trial_id, "late", 1)


def test_get_all_trials_hands_out_copies(contract):
    """As Optuna's contract has it: ``get_all_trials`` copies unless told not to (get_trial
    of Optuna's in-memory and cached storages hands out the held trial, and so does ours)."""
    storage, study_id, _ = contract
    trial_id = storage.create_new_trial(study_id)
    storage.set_trial_user_attr(trial_id, "k", "v")
    storage.get_all_trials(study_id)[0].user_attrs["k"] = "changed"
    storage.get_all_trials(study_id, deepcopy=True)[0].user_attrs["k"] = "changed"
    assert storage.get_trial(trial_id).user_attrs == {"k": "v"}


def test_a_reader_meanwhile_sees_only_whole_committed_trials(contract):
    """Another process's reader (here a thread with its own storage) reading while trials are
    written, each trial inside one of the mirror's transactions when there is one."""
    storage, study_id, url = contract
    seen: list[list[tuple]] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        reader = open_storage(url)
        reader_id = reader.get_study_id_from_name("s")
        while not done.is_set():
            try:
                seen.append(snapshot(reader.get_all_trials(reader_id)))
            except BaseException as e:  # the thread must report, not swallow
                errors.append(e)
                return

    thread = threading.Thread(target=read)
    thread.start()
    try:
        for i in range(12):
            _write_whole_trial(storage, study_id, i)
    finally:
        done.set()
        thread.join()
    assert not errors
    complete = [s for s in seen if s]
    assert [len(s) for s in complete] == sorted(len(s) for s in complete)  # never shrinks
    if isinstance(storage, WriteThroughStorage):  # all of a trial, or none of it
        whole = [t[1] == TrialState.COMPLETE and t[3] == {"x": t[0] / 12} for s in seen for t in s]
        assert all(whole)


def _write_whole_trial(storage: optuna.storages.BaseStorage, study_id: int, i: int) -> None:
    def body() -> None:
        trial_id = storage.create_new_trial(study_id)
        storage.set_trial_param(trial_id, "x", i / 12, X)
        storage.set_trial_user_attr(trial_id, "i", i)
        storage.set_trial_state_values(trial_id, TrialState.COMPLETE, [float(i)])

    if isinstance(storage, WriteThroughStorage):
        with storage.transaction():
            body()
    else:
        body()
