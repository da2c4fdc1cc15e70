"""Reading a study over and over while another process writes it (a test waiting for a state):
each read closes its connections, since an engine left to the garbage collector keeps its
connection open, and a poll every fraction of a second for minutes on a busy machine ran
PostgreSQL out of its 100 connections once."""

from __future__ import annotations

import optuna


def trials_of(storage: str, name: str) -> list[optuna.trial.FrozenTrial]:
    """The study's trials ([] before it exists), its connections closed after."""
    rdb = optuna.storages.RDBStorage(storage)
    try:
        return optuna.load_study(study_name=name, storage=rdb).get_trials()
    except KeyError:  # not created yet
        return []
    finally:
        rdb.engine.dispose()
