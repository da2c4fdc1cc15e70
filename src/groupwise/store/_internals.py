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
- :func:`create_trial`: one session that writes a whole trial (params, attributes, values)
  from a template, returning it with its number.
- :func:`trial_id`: the storage's id of a FrozenTrial.
- :func:`constraint_key`: the system attribute a constraint is stored under (``Trial.
  set_constraint`` needs a live Trial, which would sample its relative parameters again).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import optuna
import sqlalchemy
import sqlalchemy.orm

__all__ = [
    "OPTUNA_CHECKED",
    "changed_trials",
    "constraint_key",
    "create_trial",
    "sessions_on",
    "stale_trial_ids",
    "trial_id",
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


def create_trial(
    storage: optuna.storages.RDBStorage, study_id: int, template: optuna.trial.FrozenTrial
) -> optuna.trial.FrozenTrial:
    """Write ``template`` as a new trial in one session; the stored trial, with its number."""
    created: optuna.trial.FrozenTrial = storage._create_new_trial(study_id, template)
    return created


def trial_id(trial: optuna.trial.FrozenTrial) -> int:
    return int(trial._trial_id)


def constraint_key(name: str) -> str:
    from optuna.study._constrained_optimization import _CONSTRAINTS_KEY

    return f"{_CONSTRAINTS_KEY}:{name}"
