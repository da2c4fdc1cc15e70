"""Every use of Optuna's private API in groupwise, in one module.

Checked against optuna 5.0.0 (pyproject pins ``optuna>=5,<6``); ``tests/test_store.py`` and
``tests/test_storage_contract.py`` exercise each of these, so an Optuna upgrade that moves one
fails there, not in a study. Nothing outside ``groupwise.store`` touches Optuna's internals.

- :func:`sessions_on`: RDBStorage opens its sessions from ``scoped_session``; pointing it at one
  connection makes every Optuna write part of our transaction (a SAVEPOINT each).
- :func:`changed_trials`: the query Optuna's own caching storage uses to read only trials that
  can have changed (new ones, and those it holds as unfinished).
- :func:`stale_trial_ids`: Optuna's heartbeat check without failing the trials (we fail them
  ourselves, with a reason, and retry them).
- :func:`insert_trial`: a whole trial (params, attributes, values, intermediate values and
  its first heartbeat) written from a template in one session and one flush, through
  Optuna's own ORM models (so their conversions of values and datetimes hold). Optuna's
  ``create_new_trial(template_trial=...)`` writes the same rows but queries twice per
  parameter and attribute; here the compatibility of each parameter's distribution was
  already checked by the mirror, which holds every trial of the study.
- :func:`record_heartbeat`: Optuna's, with a trial deleted mid-call said as a missing row.
- :func:`with_heartbeat`: which RUNNING trials have a heartbeat row at all (Optuna's model of
  the heartbeat table), to tell a trial that never had one from one whose driver died.
- :func:`lock_study`: the study's row held for the rest of a transaction (PostgreSQL's ``FOR
  UPDATE``; SQLite's ``BEGIN IMMEDIATE`` holds the whole database already), so that drivers
  sharing a study open trials one at a time.
- :func:`trials_with_user_attr`: the study's trials whose user attribute has a value, read
  from Optuna's tables under that lock (another driver's trial the mirror has not seen yet).
- :func:`purge_orphans`: rows of Optuna's tables whose study or trial is gone (SQLite enforces
  no foreign keys, and Optuna deletes a study's trials by the list it read first).
- :func:`vanished`: RDBStorage's KeyError for a row that is not there (a study deleted while a
  driver runs).
- :func:`trial_id`: the storage's id of a FrozenTrial.
- :func:`enqueued`: whether a trial was enqueued (Optuna keeps the enqueued parameters in
  the ``fixed_params`` system attribute).
- :func:`constraint_key`: the system attribute a constraint is stored under (``Trial.
  set_constraint`` needs a live Trial, which would sample its relative parameters again).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import optuna
import sqlalchemy
import sqlalchemy.orm
from optuna.distributions import distribution_to_json
from optuna.storages._rdb import models
from optuna.trial import TrialState

__all__ = [
    "OPTUNA_CHECKED",
    "changed_trials",
    "constraint_key",
    "enqueued",
    "insert_trial",
    "lock_study",
    "purge_orphans",
    "record_heartbeat",
    "sessions_on",
    "stale_trial_ids",
    "trial_id",
    "trials_with_user_attr",
    "vanished",
    "with_heartbeat",
]

OPTUNA_CHECKED = "5.0.0"


@contextmanager
def sessions_on(
    storage: optuna.storages.RDBStorage, connection: sqlalchemy.Connection
) -> Iterator[None]:
    """Optuna's sessions join ``connection``'s transaction (each commit a SAVEPOINT release)."""
    saved = storage.scoped_session
    storage.scoped_session = sqlalchemy.orm.scoped_session(
        sqlalchemy.orm.sessionmaker(bind=connection, join_transaction_mode="create_savepoint")
    )
    try:
        yield
    finally:
        storage.scoped_session.remove()
        storage.scoped_session = saved


def changed_trials(
    storage: optuna.storages.RDBStorage, study_id: int, unfinished: set[int], newest: int
) -> list[optuna.trial.FrozenTrial]:
    """Trials with an id above ``newest``, and those of ``unfinished`` (storage ids)."""
    trials: list[optuna.trial.FrozenTrial] = storage._get_trials(study_id, None, unfinished, newest)
    return trials


def stale_trial_ids(storage: optuna.storages.RDBStorage, study_id: int) -> list[int]:
    """RUNNING trials whose last heartbeat is older than the storage's grace period."""
    ids: list[int] = storage._get_stale_trial_ids(study_id)
    return ids


def insert_trial(
    storage: optuna.storages.RDBStorage,
    study_id: int,
    template: optuna.trial.FrozenTrial,
    heartbeat: bool,
) -> tuple[int, int]:
    """Write ``template`` as a new trial of ``study_id``: (its storage id, its number).
    ``heartbeat``: give a RUNNING trial its first heartbeat in the same session. The trial
    row goes through Optuna's ORM model (its datetime conversion); its children, one
    multi-row INSERT per table."""
    session = storage.scoped_session()
    try:
        models.StudyModel.find_or_raise_by_id(study_id, session, for_update=True)
        trial = models.TrialModel(study_id=study_id, number=None, state=template.state)
        trial.datetime_start = template.datetime_start
        trial.datetime_complete = template.datetime_complete
        session.add(trial)
        session.flush()  # its id, which numbers it
        new_id = int(trial.trial_id)
        trial.number = trial.count_past_trials(session)
        number = int(trial.number)
        for table, rows in _children(new_id, template).items():
            if rows:
                session.execute(sqlalchemy.insert(table), rows)
        if heartbeat and template.state == TrialState.RUNNING:
            # SQLite reuses the ids of deleted trials, and Optuna's record_heartbeat inserts a
            # row without checking the trial exists: a launch still beating for a study that
            # was deleted under it leaves a row that would collide with this trial's.
            beats = models.TrialHeartbeatModel
            session.execute(sqlalchemy.delete(beats).where(beats.trial_id == new_id))
            session.add(beats(trial_id=new_id))
        session.commit()
        return new_id, number
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _children(trial: int, template: optuna.trial.FrozenTrial) -> dict[Any, list[dict[str, Any]]]:
    """The rows of a trial's params, values, intermediate values and attributes, by table,
    each value in the form Optuna's own models store it."""
    values, steps = models.TrialValueModel, models.TrialIntermediateValueModel
    return {
        models.TrialParamModel.__table__: [
            {
                "trial_id": trial,
                "param_name": name,
                "param_value": template.distributions[name].to_internal_repr(value),
                "distribution_json": distribution_to_json(template.distributions[name]),
            }
            for name, value in template.params.items()
        ],
        values.__table__: [
            dict(zip(("value", "value_type"), values.value_to_stored_repr(v), strict=True))
            | {"trial_id": trial, "objective": i}
            for i, v in enumerate(template.values or ())
        ],
        steps.__table__: [
            dict(
                zip(
                    ("intermediate_value", "intermediate_value_type"),
                    steps.intermediate_value_to_stored_repr(v),
                    strict=True,
                )
            )
            | {"trial_id": trial, "step": step}
            for step, v in template.intermediate_values.items()
        ],
        models.TrialUserAttributeModel.__table__: [
            {"trial_id": trial, "key": k, "value_json": json.dumps(v)}
            for k, v in template.user_attrs.items()
        ],
        models.TrialSystemAttributeModel.__table__: [
            {"trial_id": trial, "key": k, "value_json": json.dumps(v)}
            for k, v in template.system_attrs.items()
        ],
    }


def with_heartbeat(storage: optuna.storages.RDBStorage, study_id: int) -> set[int]:
    """Storage ids of the study's RUNNING trials that have a heartbeat row."""
    session = storage.scoped_session()
    try:
        rows = (
            session.query(models.TrialHeartbeatModel.trial_id)
            .join(models.TrialModel)
            .filter(models.TrialModel.study_id == study_id)
            .filter(models.TrialModel.state == TrialState.RUNNING)
        )
        return {int(row[0]) for row in rows}
    finally:
        session.close()


def record_heartbeat(storage: optuna.storages.RDBStorage, trial_id: int) -> None:
    """Optuna's record_heartbeat, with a trial deleted between its two statements (its study
    deleted under a running launch) said as RDBStorage says any row that is gone: Optuna 5.0
    asserts the row it just read is still there."""
    try:
        storage.record_heartbeat(trial_id)
    except AssertionError as e:
        raise KeyError(models.NOT_FOUND_MSG) from e


def lock_study(connection: sqlalchemy.Connection, study_id: int) -> None:
    """Hold study ``study_id``'s row until ``connection``'s transaction ends (PostgreSQL; on
    SQLite the transaction holds the database's write lock from its start)."""
    if connection.dialect.name == "sqlite":
        return
    study = models.StudyModel
    connection.execute(
        sqlalchemy.select(study.study_id).where(study.study_id == study_id).with_for_update()
    )


def trials_with_user_attr(
    connection: sqlalchemy.Connection,
    study_id: int,
    key: str,
    value: Any,
    unless: str,
    besides: int | None = None,
) -> list[tuple[int, TrialState]]:
    """(number, state) of the study's trials whose user attribute ``key`` is ``value`` and
    that have no attribute ``unless``, but trial ``besides`` (a storage id), by number, as the
    database holds them now."""
    attrs, trials = models.TrialUserAttributeModel, models.TrialModel
    other = sqlalchemy.orm.aliased(attrs)
    excluded = sqlalchemy.exists().where(other.trial_id == trials.trial_id, other.key == unless)
    rows = connection.execute(
        sqlalchemy.select(trials.number, trials.state)
        .join(attrs, attrs.trial_id == trials.trial_id)
        .where(
            trials.study_id == study_id,
            attrs.key == key,
            attrs.value_json == json.dumps(value),
            ~excluded,
            trials.trial_id != (-1 if besides is None else besides),
        )
        .order_by(trials.number)
    )
    return [(int(n), s if isinstance(s, TrialState) else TrialState[s]) for n, s in rows]


def purge_orphans(connection: sqlalchemy.Connection) -> None:
    """Delete the rows of Optuna's tables whose study or trial is gone.

    SQLite enforces no foreign keys, and Optuna deletes a study by the trials it read first:
    a trial a running launch inserted meanwhile outlives its study, as do heartbeats, params
    and attributes written for a trial already deleted. SQLite then gives the next study the
    same id (and its trials the same ids), which would adopt those rows as its own."""
    studies = sqlalchemy.select(models.StudyModel.study_id)
    trials = models.TrialModel
    connection.execute(sqlalchemy.delete(trials).where(trials.study_id.not_in(studies)))
    study_children = (
        models.StudyDirectionModel,
        models.StudyUserAttributeModel,
        models.StudySystemAttributeModel,
    )
    for model in study_children:
        connection.execute(sqlalchemy.delete(model).where(model.study_id.not_in(studies)))
    trial_children = (
        models.TrialParamModel,
        models.TrialValueModel,
        models.TrialIntermediateValueModel,
        models.TrialUserAttributeModel,
        models.TrialSystemAttributeModel,
        models.TrialHeartbeatModel,
    )
    alive = sqlalchemy.select(trials.trial_id)
    for model in trial_children:
        connection.execute(sqlalchemy.delete(model).where(model.trial_id.not_in(alive)))


def vanished(error: BaseException) -> bool:
    """Whether ``error`` is RDBStorage saying a study or trial row is not there (deleted)."""
    return (
        isinstance(error, KeyError) and bool(error.args) and error.args[0] == models.NOT_FOUND_MSG
    )


def enqueued(trial: optuna.trial.FrozenTrial) -> bool:
    return "fixed_params" in trial.system_attrs


def trial_id(trial: optuna.trial.FrozenTrial) -> int:
    return int(trial._trial_id)


def constraint_key(name: str) -> str:
    from optuna.study._constrained_optimization import _CONSTRAINTS_KEY

    return f"{_CONSTRAINTS_KEY}:{name}"
