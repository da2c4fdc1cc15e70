"""The in-memory copy of one study that :class:`~groupwise.store.WriteThroughStorage` reads
from: an Optuna InMemoryStorage holding the study, and the map between its trial ids (which
are the trial numbers: it holds one study) and the database's."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import optuna

from groupwise.errors import StudyError
from groupwise.store import _internals

__all__ = ["MemoryReads", "Replica"]

# Optuna's in-memory storage says at INFO that it created a study: true of this mirror, but
# a user reading a launch's or a server's log would take it for the study being created anew.
_IN_MEMORY_LOGGER = "optuna.storages._in_memory"


@contextmanager
def _silent(name: str) -> Iterator[None]:
    logger = logging.getLogger(name)
    saved = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = saved


class Replica:
    """One study's trials in memory, and which database trial each one is."""

    def __init__(self, backend: optuna.storages.RDBStorage, backend_study: int) -> None:
        self.memory = optuna.storages.InMemoryStorage()
        with _silent(_IN_MEMORY_LOGGER):  # "a new study created in memory": not to a user
            self.study = self.memory.create_new_study(
                backend.get_study_directions(backend_study),
                backend.get_study_name_from_id(backend_study),
            )
        for key, value in backend.get_study_user_attrs(backend_study).items():
            self.memory.set_study_user_attr(self.study, key, value)
        for key, value in backend.get_study_system_attrs(backend_study).items():
            self.memory.set_study_system_attr(self.study, key, value)
        self.to_backend: dict[int, int] = {}
        self.from_backend: dict[int, int] = {}

    def link(self, trial_id: int, backend_id: int) -> None:
        self.to_backend[trial_id] = backend_id
        self.from_backend[backend_id] = trial_id

    def numbers_of(self, backend_ids: Iterable[int]) -> set[int]:
        """The trials (numbers) of these database ids that are in memory."""
        return {self.from_backend[i] for i in backend_ids if i in self.from_backend}

    def unfinished(self) -> set[int]:
        """Database ids of the trials memory holds as unfinished (those that can change)."""
        trials = self.memory.get_all_trials(self.study, deepcopy=False)
        ids = (_internals.trial_id(t) for t in trials if not t.state.is_finished())
        return {self.to_backend[i] for i in ids if i in self.to_backend}

    def newest(self) -> int:
        """The highest database id memory holds (-1: none)."""
        return max(self.from_backend, default=-1)

    def take(self, trials: Iterable[optuna.trial.FrozenTrial]) -> int:
        """Bring in trials read from the database, new ones and changed ones; returns how many
        were new (another driver's)."""
        new = 0
        for trial in sorted(trials, key=lambda t: t.number):
            mine = self.from_backend.get(_internals.trial_id(trial))
            if mine is None:
                self.mirror(trial)
                new += 1
            else:
                self.update(mine, trial)
        return new

    def mirror(self, trial: optuna.trial.FrozenTrial) -> int:
        trial_id = self.memory.create_new_trial(self.study, template_trial=trial)
        number = self.memory.get_trial_number_from_id(trial_id)
        if number != trial.number:
            raise StudyError(
                f"study mirror out of step (trial {trial.number} became {number}); "
                "this is a bug in groupwise"
            )
        self.link(trial_id, _internals.trial_id(trial))
        return trial_id

    def update(self, trial_id: int, fresh: optuna.trial.FrozenTrial) -> None:
        held = self.memory.get_trial(trial_id)
        if held.state.is_finished() or (held.state == fresh.state and held.params == fresh.params):
            return  # finished trials never change; an unchanged one needs nothing
        for name, value in fresh.params.items():
            if name not in held.params:
                dist = fresh.distributions[name]
                self.memory.set_trial_param(trial_id, name, dist.to_internal_repr(value), dist)
        for step, value in fresh.intermediate_values.items():
            self.memory.set_trial_intermediate_value(trial_id, step, value)
        for key, value in fresh.user_attrs.items():
            self.memory.set_trial_user_attr(trial_id, key, value)
        for key, value in fresh.system_attrs.items():
            self.memory.set_trial_system_attr(trial_id, key, value)
        if fresh.state != held.state:
            self.memory.set_trial_state_values(trial_id, fresh.state, fresh.values)


class MemoryReads(optuna.storages.BaseStorage):
    """The read half of Optuna's storage API, served from memory (``self.memory``); a
    subclass writes, and keeps memory fresh in :meth:`_fresh`."""

    memory: optuna.storages.InMemoryStorage
    _seen: frozenset[int] | None = None  # inside seeing_only(): the trials listed

    def _fresh(self) -> None:
        """Called before each read of trials: bring memory up to date if it must be."""

    def get_study_id_from_name(self, study_name: str) -> int:
        return self.memory.get_study_id_from_name(study_name)

    def get_study_name_from_id(self, study_id: int) -> str:
        return self.memory.get_study_name_from_id(study_id)

    def get_study_directions(self, study_id: int) -> Any:
        return self.memory.get_study_directions(study_id)

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return self.memory.get_study_user_attrs(study_id)

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return self.memory.get_study_system_attrs(study_id)

    def get_all_studies(self) -> list[Any]:
        return self.memory.get_all_studies()

    def get_trial(self, trial_id: int) -> optuna.trial.FrozenTrial:
        self._fresh()
        return self.memory.get_trial(trial_id)

    def get_all_trials(self, study_id: int, deepcopy: bool = True, states: Any = None) -> list[Any]:
        self._fresh()
        trials = self.memory.get_all_trials(study_id, deepcopy=deepcopy, states=states)
        if self._seen is None:
            return trials
        return [t for t in trials if t.number in self._seen]

    @contextmanager
    def seeing_only(self, numbers: frozenset[int]) -> Iterator[None]:
        """Reads of the study's trials list only ``numbers`` for the duration (a pruner that
        must not see a round-mate's result: see :meth:`Ledger.begin_round`)."""
        self._seen = numbers
        try:
            yield
        finally:
            self._seen = None
