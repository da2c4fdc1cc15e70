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
from groupwise.store._replica import MemoryReads, Replica

__all__ = ["WriteThroughStorage"]

T = TypeVar("T")


class WriteThroughStorage(MemoryReads):
    """One study of an RDBStorage, mirrored in memory. Mirror ids are trial numbers."""

    def __init__(
        self, backend: optuna.storages.RDBStorage, study_name: str, patience_s: float = 120.0
    ) -> None:
        self.backend = backend
        self.study_name = study_name
        self.backend_study = backend.get_study_id_from_name(study_name)
        self._connection: sqlalchemy.Connection | None = None  # inside transaction()
        self._stale_memory = False
        self._pending: list[int] = []  # created in this transaction, not yet written
        self._written: dict[int, int] = {}  # this transaction: mirror id -> stored number
        self.rebuilds = 0  # times the mirror was rebuilt after a rolled-back transaction
        self.version = 0  # bumped by every change to the mirror: a cache key for readers
        self.foreign_trials = 0  # trials other drivers created while this one ran
        self.outage = Outage(patience_s)  # one deadline for a whole outage, every call
        self._load()

    def _load(self) -> None:
        """(Re)build the mirror from the database. Trial ids come out the same each time:
        the mirror holds one study, so its ids are the trial numbers."""
        self.replica = Replica(self.backend, self.backend_study)
        self.memory = self.replica.memory
        self._study = self.replica.study
        foreign = self.foreign_trials
        self.sync()
        self.foreign_trials = foreign
        self.version += 1

    @property
    def study_id(self) -> int:
        """The mirrored study's id (in memory)."""
        return self._study

    def backend_id(self, trial_id: int) -> int | None:
        """The database id of a trial (None: created in this transaction, not yet written)."""
        self._fresh()
        return self.replica.to_backend.get(trial_id)

    def numbers_of(self, backend_ids: set[int] | list[int]) -> set[int]:
        """The trials (numbers) of these database ids, of those the mirror holds."""
        self._fresh()
        return self.replica.numbers_of(backend_ids)

    def write(self, what: str, call: Callable[[], T]) -> T:
        """A call on the database (``what`` it does, for the error), waiting out a restart."""
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
        self.write("re-read the study", self._refresh_if_stale)
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
                self.backend, self.backend_study, template, heartbeat
            )
            self._written[trial_id] = number
            if number != template.number:
                # Another driver numbered trials meanwhile: memory must be renumbered, which
                # only a rebuild does (after this commits; the caller uses stored_number).
                self._stale_memory = True
                self.foreign_trials += 1
            self.replica.link(trial_id, backend_id)

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
        return self.backend_study

    # -- keeping the mirror in step with the database ------------------------------------------
    def sync(self) -> None:
        """Bring in trials other drivers created or changed since the last sync.

        Reads only what can have changed: trials new to the mirror and those it holds as
        unfinished (finished trials never change).
        """
        self._fresh()
        unfinished, newest = self.replica.unfinished(), self.replica.newest()
        trials = self.write(
            "read the study",
            lambda: _internals.changed_trials(self.backend, self.backend_study, unfinished, newest),
        )
        self.foreign_trials += self.replica.take(trials)

    def _beat(self, backend_id: int, state: TrialState) -> None:
        """A trial that starts RUNNING gets its first heartbeat at once, in the same call."""
        if state == TrialState.RUNNING and self.backend.get_heartbeat_interval():
            _internals.record_heartbeat(self.backend, backend_id)

    # -- writes: the database first, then memory ----------------------------------------------
    def create_new_study(self, directions: Any, study_name: str | None = None) -> int:
        raise StudyError(
            "WriteThroughStorage mirrors an existing study; create studies in the database"
        )

    def delete_study(self, study_id: int) -> None:
        raise StudyError("WriteThroughStorage does not delete studies; use the database")

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        backend = self._check(study_id)
        self.write(
            "set a study attribute", lambda: self.backend.set_study_user_attr(backend, key, value)
        )
        self.memory.set_study_user_attr(study_id, key, value)

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        backend = self._check(study_id)
        self.write(
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
        trial = self.write(
            "create a trial",
            lambda: self.backend.get_trial(self.backend.create_new_trial(backend, template_trial)),
        )
        # Stale-able from its first moment (its own call: a retry must not create it twice).
        self.write(
            "record a heartbeat", lambda: self._beat(_internals.trial_id(trial), trial.state)
        )
        if trial.number > len(self.memory.get_all_trials(self._study, deepcopy=False)):
            self.sync()  # another driver created trials in between: bring them in first
            return self.replica.from_backend[_internals.trial_id(trial)]
        return self.replica.mirror(trial)

    def _through(self, trial_id: int, what: str, call: Callable[[int], object]) -> None:
        """Write to the database unless the trial is pending (then it is written whole)."""
        if trial_id in self._pending:
            self.version += 1
            return
        backend = self.replica.to_backend[trial_id]
        self.write(what, lambda: call(backend))

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
        backend = self.replica.to_backend[trial_id]
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

        updated = self.write("set a trial's state", write)
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

    def _fresh(self) -> None:
        """Rebuild memory first if a transaction that did not commit left it stale."""
        if self._stale_memory and self._connection is None:
            self.write("re-read the study", self._refresh_if_stale)
