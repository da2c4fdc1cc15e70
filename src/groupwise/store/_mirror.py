"""WriteThroughStorage: one study read from memory, every write committed to the database.

Optuna's samplers read the study's trials on every ``suggest_*`` call; against SQL each of
those reads is a query (most of a trial's cost, measured in BENCHMARKS.md). A write goes to the
database, and only when it succeeded to the mirror. Outside a :meth:`~WriteThroughStorage.
transaction` that write has committed; inside one, memory is rebuilt from the database if the
transaction does not commit, so memory never keeps what the database lacks. Writes wait out a
database restart (:func:`~groupwise.store._open.reconnecting`).

A trial created inside a transaction is written once, whole, when the transaction ends: its
parameters, attributes and first heartbeat in one session instead of one per ``suggest_*``
(see BENCHMARKS.md, per-trial overhead). Until then it lives in memory only, which is safe
because nothing outside the transaction can see it.

Other drivers may share the study. Their trials reach the mirror at every :meth:`sync`
(once per heartbeat, and before a start when others are active); between syncs the sampler
sees them as they were, as a sampler with Optuna's own caching storage would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import optuna
import sqlalchemy
from optuna.trial import TrialState

from groupwise.errors import StudyError
from groupwise.store import _internals
from groupwise.store._open import Outage, begin, reconnecting

__all__ = ["WriteThroughStorage"]

T = TypeVar("T")


class WriteThroughStorage(optuna.storages.BaseStorage):
    """One study of an RDBStorage, mirrored in memory. Mirror ids are trial numbers."""

    def __init__(
        self, backend: optuna.storages.RDBStorage, study_name: str, patience_s: float = 120.0
    ) -> None:
        self.backend = backend
        self.study_name = study_name
        self._backend_study = backend.get_study_id_from_name(study_name)
        self._connection: sqlalchemy.Connection | None = None  # inside transaction()
        self._stale_memory = False
        self._pending: list[int] = []  # created in this transaction, not yet written
        self._written: dict[int, int] = {}  # this transaction: mirror id -> stored number
        self.rebuilds = 0  # times the mirror was rebuilt after a rolled-back transaction
        self.version = 0  # bumped by every change to the mirror: a cache key for readers
        self.foreign_trials = 0  # trials other drivers created while this one ran
        self._seen: frozenset[int] | None = None  # inside seeing_only(): the trials listed
        self.outage = Outage(patience_s)  # one deadline for a whole outage, every call
        self._load()

    def _load(self) -> None:
        """(Re)build the mirror from the database. Trial ids come out the same each time:
        the mirror holds one study, so its ids are the trial numbers."""
        self.memory = optuna.storages.InMemoryStorage()
        self._study = self.memory.create_new_study(
            self.backend.get_study_directions(self._backend_study),
            self.backend.get_study_name_from_id(self._backend_study),
        )
        for key, value in self.backend.get_study_user_attrs(self._backend_study).items():
            self.memory.set_study_user_attr(self._study, key, value)
        for key, value in self.backend.get_study_system_attrs(self._backend_study).items():
            self.memory.set_study_system_attr(self._study, key, value)
        self._to_backend: dict[int, int] = {}
        self._from_backend: dict[int, int] = {}
        foreign = self.foreign_trials
        self.sync()
        self.foreign_trials = foreign
        self.version += 1

    def _write(self, what: str, call: Callable[[], T]) -> T:
        self.version += 1
        if self._connection is not None:  # inside transaction(): it retries as a whole
            return call()
        return self._existing(what, lambda: reconnecting(call, what, self.outage))

    def _existing(self, what: str, call: Callable[[], T]) -> T:
        """``call``, with a study deleted under us said in one line instead of a KeyError."""
        try:
            return call()
        except KeyError as e:
            if not _internals.vanished(e):
                raise
            raise StudyError(
                f"study {self.study_name!r} is gone from the "
                f"database (deleted while this launch ran?); could not {what}. Launch it again "
                "to start it anew"
            ) from e

    # -- transactions spanning Optuna's writes and groupwise's -----------------------------------
    @contextmanager
    def transaction(self) -> Iterator[sqlalchemy.Connection]:
        """One database transaction for every write made inside, Optuna's and the caller's.

        Optuna's storage commits each call on its own; here its sessions join this
        connection's transaction (each commit becomes a SAVEPOINT release), and the caller
        writes groupwise's rows on the same connection, so all of it commits or none does.
        If it does not commit, the mirror is rebuilt from the database before the next use.
        """
        if self._connection is not None:
            yield self._connection  # nested: part of the outer transaction
            return
        self._write("re-read the study", self._refresh_if_stale)
        self._written = {}
        try:
            with (
                self.backend.engine.connect() as connection,
                begin(connection),
                _internals.sessions_on(self.backend, connection),
            ):
                self._connection = connection
                try:
                    yield connection
                    self.write_pending()
                finally:
                    self._connection = None
        except BaseException:
            self._pending = []
            self._stale_memory = True  # memory may hold writes the database rolled back
            raise

    def transact(self, what: str, body: Callable[[sqlalchemy.Connection], T]) -> T:
        """Run ``body`` in one :meth:`transaction`, waiting out a database restart: a
        transaction that failed wrote nothing, so the whole body is run again."""

        def attempt() -> T:
            with self.transaction() as connection:
                return body(connection)

        return self._existing(what, lambda: reconnecting(attempt, what, self.outage))

    def stored_number(self, trial_id: int) -> int:
        """The number a trial created in the last transaction has in the database (the
        same as its mirror id unless another driver created trials meanwhile)."""
        return self._written.get(trial_id, trial_id)

    def write_pending(self) -> None:
        """Write the trials created in this transaction so far, each whole, in one session."""
        pending, self._pending = self._pending, []
        for trial_id in pending:
            template = self.memory.get_trial(trial_id)
            heartbeat = bool(self.backend.get_heartbeat_interval())
            backend_id, number = _internals.insert_trial(
                self.backend, self._backend_study, template, heartbeat
            )
            self._written[trial_id] = number
            if number != template.number:
                # Another driver numbered trials meanwhile: memory must be renumbered, which
                # only a rebuild does (after this commits; the caller uses stored_number).
                self._stale_memory = True
                self.foreign_trials += 1
            self._to_backend[trial_id] = backend_id
            self._from_backend[backend_id] = trial_id

    def _refresh_if_stale(self) -> None:
        """Rebuild the mirror from the database after a transaction that did not commit."""
        if not self._stale_memory:
            return
        self._stale_memory = False  # before _load, whose reads would otherwise come back here
        try:
            self._load()
        except BaseException:
            self._stale_memory = True  # a failed rebuild: the next use tries again
            raise
        self.rebuilds += 1

    def _check(self, study_id: int) -> int:
        if study_id != self._study:
            raise StudyError("WriteThroughStorage mirrors one study; use the database for others")
        return self._backend_study

    # -- keeping the mirror in step with the database ------------------------------------------
    def same_study(self) -> bool:
        """Whether the database's study is still the one mirrored. A study deleted and made
        again under its name has a new id on PostgreSQL, but on SQLite it (and its trials) may
        take the old ids: its first trial, read back by id, tells the two apart."""
        if self.backend.get_study_id_from_name(self.study_name) != self._backend_study:
            return False
        first = self._to_backend.get(0)
        if first is None:
            return True  # nothing mirrored yet: a sync reads whatever is there
        try:
            stored = self._write("read the study", lambda: self.backend.get_trial(first))
        except KeyError:
            return False
        held = self.memory.get_trial(0)
        return (stored.number, stored.datetime_start) == (held.number, held.datetime_start)

    def sync(self) -> None:
        """Bring in trials other drivers created or changed since the last sync.

        Reads only what can have changed: trials new to the mirror and those it holds as
        unfinished (finished trials never change).
        """
        self._fresh()
        unfinished = {
            self._to_backend[i]
            for i in (
                _internals.trial_id(t)
                for t in self.memory.get_all_trials(self._study, deepcopy=False)
                if not t.state.is_finished()
            )
            if i in self._to_backend
        }
        newest = max(self._from_backend, default=-1)
        trials = self._write(
            "read the study",
            lambda: _internals.changed_trials(
                self.backend, self._backend_study, unfinished, newest
            ),
        )
        for trial in sorted(trials, key=lambda t: t.number):
            mine = self._from_backend.get(_internals.trial_id(trial))
            if mine is None:
                self._mirror(trial)
                self.foreign_trials += 1
            else:
                self._update(mine, trial)

    def _mirror(self, trial: optuna.trial.FrozenTrial) -> int:
        trial_id = self.memory.create_new_trial(self._study, template_trial=trial)
        number = self.memory.get_trial_number_from_id(trial_id)
        if number != trial.number:
            raise StudyError(
                f"study mirror out of step (trial {trial.number} became {number}); "
                "this is a bug in groupwise"
            )
        self._to_backend[trial_id] = _internals.trial_id(trial)
        self._from_backend[_internals.trial_id(trial)] = trial_id
        return trial_id

    def _update(self, trial_id: int, fresh: optuna.trial.FrozenTrial) -> None:
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

    # -- heartbeats (Optuna's table in the database) --------------------------------------------
    def record_heartbeat(self, trial_id: int) -> None:
        self._fresh()
        backend_id = self._to_backend.get(trial_id)
        if backend_id is not None:  # a pending trial gets its first one when it is written
            self._write(
                "record a heartbeat", lambda: _internals.record_heartbeat(self.backend, backend_id)
            )

    def _beat(self, backend_id: int, state: TrialState) -> None:
        """A trial that starts RUNNING gets its first heartbeat at once, in the same call."""
        if state == TrialState.RUNNING and self.backend.get_heartbeat_interval():
            _internals.record_heartbeat(self.backend, backend_id)

    def beating(self) -> set[int]:
        """RUNNING trials (mirror ids) that have a heartbeat at all, live or stale."""
        self._fresh()
        ids = self._write(
            "read the heartbeats",
            lambda: _internals.with_heartbeat(self.backend, self._backend_study),
        )
        return {self._from_backend[i] for i in ids if i in self._from_backend}

    def stale_trials(self) -> list[int]:
        """RUNNING trials whose driver stopped sending heartbeats (mirror ids)."""
        self._fresh()
        stale = self._write(
            "look for stale trials",
            lambda: _internals.stale_trial_ids(self.backend, self._backend_study),
        )
        return [self._from_backend[i] for i in stale if i in self._from_backend]

    # -- writes: the database first, then memory ----------------------------------------------
    def create_new_study(self, directions: Any, study_name: str | None = None) -> int:
        raise StudyError(
            "WriteThroughStorage mirrors an existing study; create studies in the database"
        )

    def delete_study(self, study_id: int) -> None:
        raise StudyError("WriteThroughStorage does not delete studies; use the database")

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        backend = self._check(study_id)
        self._write(
            "set a study attribute", lambda: self.backend.set_study_user_attr(backend, key, value)
        )
        self.memory.set_study_user_attr(study_id, key, value)

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        backend = self._check(study_id)
        self._write(
            "set a study attribute", lambda: self.backend.set_study_system_attr(backend, key, value)
        )
        self.memory.set_study_system_attr(study_id, key, value)

    def create_new_trial(self, study_id: int, template_trial: Any = None) -> int:
        backend = self._check(study_id)
        if self._connection is not None and template_trial is None:
            self.version += 1
            trial_id = self.memory.create_new_trial(study_id)
            self._pending.append(trial_id)  # written whole when the transaction ends
            return trial_id
        trial = self._write(
            "create a trial",
            lambda: self.backend.get_trial(self.backend.create_new_trial(backend, template_trial)),
        )
        # Stale-able from its first moment (its own call: a retry must not create it twice).
        self._write(
            "record a heartbeat", lambda: self._beat(_internals.trial_id(trial), trial.state)
        )
        if trial.number > len(self.memory.get_all_trials(self._study, deepcopy=False)):
            self.sync()  # another driver created trials in between: bring them in first
            return self._from_backend[_internals.trial_id(trial)]
        return self._mirror(trial)

    def _through(self, trial_id: int, what: str, call: Callable[[int], object]) -> None:
        """Write to the database unless the trial is pending (then it is written whole)."""
        if trial_id in self._pending:
            self.version += 1
            return
        backend = self._to_backend[trial_id]
        self._write(what, lambda: call(backend))

    def set_trial_param(
        self, trial_id: int, param_name: str, param_value_internal: float, distribution: Any
    ) -> None:
        self._through(
            trial_id,
            "set a parameter",
            lambda b: self.backend.set_trial_param(
                b, param_name, param_value_internal, distribution
            ),
        )
        self.memory.set_trial_param(trial_id, param_name, param_value_internal, distribution)

    def set_trial_state_values(self, trial_id: int, state: Any, values: Any = None) -> bool:
        if trial_id in self._pending:
            self.version += 1
            return self.memory.set_trial_state_values(trial_id, state, values)
        backend = self._to_backend[trial_id]
        attempts = 0

        def write() -> bool:
            nonlocal attempts
            attempts += 1
            try:
                updated = self.backend.set_trial_state_values(backend, state, values)
            except optuna.exceptions.UpdateFinishedTrialError:
                # After a reconnect: the first attempt committed before the connection died.
                if attempts > 1 and self.backend.get_trial(backend).state == state:
                    return True
                raise
            if updated:
                self._beat(backend, state)
            return updated

        updated = self._write("set a trial's state", write)
        if updated:
            self.memory.set_trial_state_values(trial_id, state, values)
        return updated

    def set_trial_intermediate_value(
        self, trial_id: int, step: int, intermediate_value: float
    ) -> None:
        self._through(
            trial_id,
            "report a value",
            lambda b: self.backend.set_trial_intermediate_value(b, step, intermediate_value),
        )
        self.memory.set_trial_intermediate_value(trial_id, step, intermediate_value)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._through(
            trial_id,
            "set a trial attribute",
            lambda b: self.backend.set_trial_user_attr(b, key, value),
        )
        self.memory.set_trial_user_attr(trial_id, key, value)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._through(
            trial_id,
            "set a trial attribute",
            lambda b: self.backend.set_trial_system_attr(b, key, value),
        )
        self.memory.set_trial_system_attr(trial_id, key, value)

    # -- reads: memory --------------------------------------------------------------------------
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

    def _fresh(self) -> None:
        if self._stale_memory and self._connection is None:
            self._write("re-read the study", self._refresh_if_stale)
