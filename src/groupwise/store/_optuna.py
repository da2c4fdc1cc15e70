"""Where studies live: the storage URL, and opening it through Optuna's RDB storage.

Default ``sqlite:///groupwise.db`` (env ``GROUPWISE_STORAGE`` overrides it); PostgreSQL as
``postgresql+psycopg://user@host/db``. Connections are checked before use (pool_pre_ping), so
a database that restarted is reconnected rather than failing the next write. Read-only
commands never create a database: a missing SQLite file is an error, not an empty study.

SQLite runs in WAL mode with synchronous=NORMAL: a commit no longer waits for an fsync
(37 -> 22 ms per trial with a random sampler, measured in BENCHMARKS.md), and readers such as
the dashboard or ``groupwise status`` do not block the driver's writes. A crashed process
loses nothing; an OS crash or power cut can lose the last commits, whose trials then read as
unfinished.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import optuna
import sqlalchemy
import sqlalchemy.exc
import sqlalchemy.orm

from groupwise.errors import StudyError

log = logging.getLogger("groupwise")
T = TypeVar("T")

__all__ = [
    "ATTEMPT_ATTR",
    "CANONICAL_ATTR",
    "CONFIG_ATTR",
    "DEFAULT_STORAGE",
    "DUPLICATE_ATTR",
    "FINGERPRINT_ATTR",
    "METRIC_ATTR",
    "REASON_ATTR",
    "RETRIED_ATTR",
    "RETRY_OF_ATTR",
    "RUN_ATTR",
    "SPACE_ATTR",
    "TASK_ATTR",
    "WriteThroughStorage",
    "connection_lost",
    "open_storage",
    "reconnecting",
    "resolve_url",
    "study_names",
]

DEFAULT_STORAGE = "sqlite:///groupwise.db"

# groupwise's data lives in namespaced Optuna user attributes (as optuna-dashboard's does):
# the driver writes them, analysis reads them, both through these names.
CONFIG_ATTR = "groupwise.config"  # trial: the TrialConfig as JSON
CANONICAL_ATTR = "groupwise.canonical"  # trial: equal for configs that train identically
DUPLICATE_ATTR = "groupwise.duplicate_of"  # trial: the trial whose result it reuses
REASON_ATTR = "groupwise.fail_reason"  # trial: why it failed
RUN_ATTR = "groupwise.run"  # trial: wall time, peak memory, host, node, device
ATTEMPT_ATTR = "groupwise.attempt"  # trial: 1 for a first run, n for its (n-1)th retry
RETRY_OF_ATTR = "groupwise.retry_of"  # trial: the first attempt's number
RETRIED_ATTR = "groupwise.retried"  # failed trial: re-enqueued, so not counted toward budget
FINGERPRINT_ATTR = "groupwise.fingerprint"  # study: task, space, objective, training, seed
TASK_ATTR = "groupwise.task"  # study
METRIC_ATTR = "groupwise.metric"  # study
SPACE_ATTR = "groupwise.search_space"  # study


def resolve_url(url: str | None) -> str:
    return url or os.environ.get("GROUPWISE_STORAGE") or DEFAULT_STORAGE


def open_storage(
    url: str | None, *, create: bool = False, heartbeat: tuple[int, int] | None = None
) -> optuna.storages.RDBStorage:
    """Open the study database; with ``create=False`` a missing SQLite file is an error.

    ``heartbeat`` is ``(interval_s, grace_s)``: trials RUNNING with no heartbeat for
    ``grace_s`` read as stale (Optuna's own heartbeat table, so the optuna CLI agrees).
    """
    resolved = resolve_url(url)
    if resolved.startswith("sqlite:///") and not create:
        path = Path(resolved.removeprefix("sqlite:///"))
        if str(path) != ":memory:" and not path.exists():
            raise StudyError(
                f"no study database at {path} (storage {resolved}); run `groupwise launch` first "
                "or pass --storage"
            )
    for attempt in range(3):
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" only in name
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = optuna.storages.RDBStorage(
                    resolved,
                    engine_kwargs={"pool_pre_ping": True},
                    skip_compatibility_check=False,
                    heartbeat_interval=heartbeat[0] if heartbeat else None,
                    grace_period=heartbeat[1] if heartbeat else None,
                )
            break
        except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as e:
            detail = str(e).splitlines()[0]
            # Another process created the same table or row first (SQLite's and PostgreSQL's
            # words for it).
            racing = ("already exists", "duplicate key", "UNIQUE constraint failed")
            if any(words in detail for words in racing) and attempt < 2:
                # Two drivers creating Optuna's tables in one new database at once: the other
                # won; open what it made.
                time.sleep(0.5)
                continue
            raise StudyError(f"cannot open storage {resolved}: {detail}") from e
    if resolved.startswith("sqlite"):
        sqlalchemy.event.listen(storage.engine, "connect", _sqlite_pragmas)
        storage.engine.dispose()  # connections made before the listener reopen with it
    return storage


def _sqlite_pragmas(connection: object, record: object) -> None:
    cursor = connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


@contextmanager
def _begin(connection: sqlalchemy.Connection) -> Iterator[None]:
    """A transaction on ``connection``; on SQLite begun by us, as BEGIN IMMEDIATE.

    The sqlite3 module begins transactions itself, and that breaks SAVEPOINT, so it is told
    to keep out (isolation_level None) for the length of this transaction. IMMEDIATE takes
    the write lock up front: a transaction that reads and then writes cannot deadlock with
    another driver's (SQLite would answer one of them "database is locked" at once).
    """
    raw = connection.connection.driver_connection if connection.dialect.name == "sqlite" else None
    if raw is not None:
        raw.isolation_level = None
    try:
        with connection.begin():
            if raw is not None:
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            yield
    finally:
        if raw is not None:
            raw.isolation_level = ""  # the module's default again


def study_names(storage: optuna.storages.RDBStorage) -> list[str]:
    return sorted(s.study_name for s in storage.get_all_studies())


def connection_lost(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) is the database going away, not a bad write.

    Optuna wraps SQLAlchemy errors in StorageInternalError; the cause says which it was.
    """
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
            return True
        if isinstance(seen, sqlalchemy.exc.DBAPIError) and seen.connection_invalidated:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def reconnecting(call: Callable[[], T], what: str, patience_s: float = 120.0) -> T:
    """Run a database call, waiting out a database that restarts (up to ``patience_s``).

    pool_pre_ping replaces connections that died while idle; this covers the calls made while
    the server is down. Each Optuna write is one transaction, so a call that failed wrote
    nothing and is safe to repeat.
    """
    deadline = time.monotonic() + patience_s
    delay = 0.2
    while True:
        try:
            return call()
        except (optuna.exceptions.StorageInternalError, sqlalchemy.exc.SQLAlchemyError) as e:
            if not connection_lost(e):
                raise
            if time.monotonic() + delay > deadline:
                raise StudyError(
                    f"lost the study database while trying to {what} and it did not come back "
                    f"within {patience_s:g} s: {str(e.__cause__ or e).splitlines()[0]}; check "
                    "the server, then run the same `groupwise launch` again to resume"
                ) from e
            log.warning("database unreachable (%s); retrying in %.1f s", what, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


class WriteThroughStorage(optuna.storages.BaseStorage):
    """One study, read from memory, with every write committed to the database first.

    Optuna's samplers read the study's trials on every ``suggest_*`` call; against SQL each of
    those reads is a query (most of a trial's cost, measured in BENCHMARKS.md). A write goes
    to the database, and only when it succeeded to the mirror. Outside a :meth:`transaction`
    that write has committed; inside one, memory is rebuilt from the database if the
    transaction does not commit, so memory never keeps what the database lacks. Writes wait
    out a database restart (:func:`reconnecting`).

    Other drivers may share the study. Their trials reach the mirror when a trial number
    shows a gap (on the next ``ask``) and at every :meth:`sync`, which the driver calls once
    per heartbeat; between syncs the sampler sees them as they were, as a sampler with
    Optuna's own caching storage would.
    """

    def __init__(self, backend: optuna.storages.RDBStorage, study_name: str) -> None:
        self.backend = backend
        self._backend_study = backend.get_study_id_from_name(study_name)
        self._connection: sqlalchemy.Connection | None = None  # inside transaction()
        self._stale_memory = False
        self.rebuilds = 0  # times the mirror was rebuilt after a rolled-back transaction
        self._load()
        self.foreign_trials = 0  # trials other drivers created while this one ran

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
        self.foreign_trials = 0
        self.sync()

    def _write(self, what: str, call: Callable[[], T]) -> T:
        if self._connection is not None:  # inside transaction(): it retries as a whole
            return call()
        return reconnecting(call, what)

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
        saved = self.backend.scoped_session
        try:
            with self.backend.engine.connect() as connection, _begin(connection):
                self.backend.scoped_session = sqlalchemy.orm.scoped_session(
                    sqlalchemy.orm.sessionmaker(
                        bind=connection, join_transaction_mode="create_savepoint"
                    )
                )
                self._connection = connection
                try:
                    yield connection
                finally:
                    self.backend.scoped_session.remove()
                    self.backend.scoped_session = saved
                    self._connection = None
        except BaseException:
            self._stale_memory = True  # memory may hold writes the database rolled back
            raise

    def transact(self, what: str, body: Callable[[sqlalchemy.Connection], T]) -> T:
        """Run ``body`` in one :meth:`transaction`, waiting out a database restart: a
        transaction that failed wrote nothing, so the whole body is run again."""

        def attempt() -> T:
            with self.transaction() as connection:
                return body(connection)

        return reconnecting(attempt, what)

    def _refresh_if_stale(self) -> None:
        """Rebuild the mirror from the database after a transaction that did not commit."""
        if not self._stale_memory:
            return
        foreign = self.foreign_trials
        self._stale_memory = False
        self.rebuilds += 1
        self._load()
        self.foreign_trials = foreign

    def _check(self, study_id: int) -> int:
        if study_id != self._study:
            raise StudyError("WriteThroughStorage mirrors one study; use the database for others")
        return self._backend_study

    # -- keeping the mirror in step with the database ------------------------------------------
    def sync(self) -> None:
        """Bring in trials other drivers created or changed since the last sync.

        Reads only what can have changed: trials new to the mirror and those it holds as
        unfinished (finished trials never change), through the query Optuna's own caching
        storage uses.
        """
        unfinished = {
            self._to_backend[t._trial_id]
            for t in self.memory.get_all_trials(self._study, deepcopy=False)
            if not t.state.is_finished()
        }
        newest = max(self._from_backend, default=-1)
        trials = self._write(
            "read the study",
            lambda: self.backend._get_trials(self._backend_study, None, unfinished, newest),
        )
        for trial in sorted(trials, key=lambda t: t.number):
            mine = self._from_backend.get(trial._trial_id)
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
        self._to_backend[trial_id] = trial._trial_id
        self._from_backend[trial._trial_id] = trial_id
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
        backend_id = self._to_backend[trial_id]
        self._write("record a heartbeat", lambda: self.backend.record_heartbeat(backend_id))

    def _beat(self, backend_id: int, state: optuna.trial.TrialState) -> None:
        """A trial that starts RUNNING gets its first heartbeat at once, in the same call."""
        if state == optuna.trial.TrialState.RUNNING and self.backend.get_heartbeat_interval():
            self.backend.record_heartbeat(backend_id)

    def stale_trials(self) -> list[int]:
        """RUNNING trials whose driver stopped sending heartbeats (mirror ids)."""
        stale = self._write(
            "look for stale trials",
            lambda: self.backend._get_stale_trial_ids(self._backend_study),
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

        trial = self._write(
            "create a trial",
            lambda: self.backend.get_trial(self.backend.create_new_trial(backend, template_trial)),
        )
        # Stale-able from its first moment (its own call: a retry must not create it twice).
        self._write("record a heartbeat", lambda: self._beat(trial._trial_id, trial.state))
        if trial.number > len(self.memory.get_all_trials(self._study, deepcopy=False)):
            self.sync()  # another driver created trials in between: bring them in first
            return self._from_backend[trial._trial_id]
        return self._mirror(trial)

    def set_trial_param(
        self, trial_id: int, param_name: str, param_value_internal: float, distribution: Any
    ) -> None:
        backend = self._to_backend[trial_id]
        self._write(
            "set a parameter",
            lambda: self.backend.set_trial_param(
                backend, param_name, param_value_internal, distribution
            ),
        )
        self.memory.set_trial_param(trial_id, param_name, param_value_internal, distribution)

    def set_trial_state_values(self, trial_id: int, state: Any, values: Any = None) -> bool:
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
        backend = self._to_backend[trial_id]
        self._write(
            "report a value",
            lambda: self.backend.set_trial_intermediate_value(backend, step, intermediate_value),
        )
        self.memory.set_trial_intermediate_value(trial_id, step, intermediate_value)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        backend = self._to_backend[trial_id]
        self._write(
            "set a trial attribute", lambda: self.backend.set_trial_user_attr(backend, key, value)
        )
        self.memory.set_trial_user_attr(trial_id, key, value)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        backend = self._to_backend[trial_id]
        self._write(
            "set a trial attribute",
            lambda: self.backend.set_trial_system_attr(backend, key, value),
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
        if self._stale_memory and self._connection is None:
            self._write("re-read the study", self._refresh_if_stale)
        return self.memory.get_trial(trial_id)

    def get_all_trials(self, study_id: int, deepcopy: bool = True, states: Any = None) -> list[Any]:
        if self._stale_memory and self._connection is None:
            self._write("re-read the study", self._refresh_if_stale)
        return self.memory.get_all_trials(study_id, deepcopy=deepcopy, states=states)
