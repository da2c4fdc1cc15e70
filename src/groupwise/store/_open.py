"""Where studies live: the storage URL, opening it through Optuna's RDB storage, and waiting
out a database that restarts.

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
import re
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import optuna
import sqlalchemy
import sqlalchemy.exc

from groupwise import _interrupts as interrupts
from groupwise.errors import StudyError

log = logging.getLogger("groupwise")
T = TypeVar("T")

__all__ = [
    "DEFAULT_STORAGE",
    "Outage",
    "begin",
    "connection_lost",
    "mask",
    "open_storage",
    "ping",
    "quiet_optuna",
    "reconnecting",
    "resolve_url",
    "study_names",
]

DEFAULT_STORAGE = "sqlite:///groupwise.db"


def quiet_optuna() -> None:
    """Optuna logs a line per trial at INFO; a launch with a progress bar wants warnings only."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)


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
                f"no study database at {path} (storage {mask(resolved)}); run `groupwise launch` "
                "first or pass --storage"
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
            # words for it): two drivers creating Optuna's tables in one new database at once.
            racing = ("already exists", "duplicate key", "UNIQUE constraint failed")
            if any(words in detail for words in racing) and attempt < 2:
                time.sleep(0.5)
                continue
            raise StudyError(f"cannot open storage {mask(resolved)}: {mask(detail)}") from e
    if resolved.startswith("sqlite"):
        sqlalchemy.event.listen(storage.engine, "connect", _sqlite_pragmas)
        storage.engine.dispose()  # connections made before the listener reopen with it
    return storage


def ping(storage: str | optuna.storages.RDBStorage | None) -> str:
    """``"ok"`` if the database answers a query, else one line saying why (password masked).
    ``storage``: a URL, or a storage already open (its engine's pool is reused)."""
    try:
        if not isinstance(storage, optuna.storages.RDBStorage):
            storage = open_storage(storage, create=True)
        with storage.engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
    except (StudyError, sqlalchemy.exc.SQLAlchemyError) as e:
        return f"unreachable: {mask(str(e).splitlines()[0])}"
    return "ok"


def _sqlite_pragmas(connection: object, record: object) -> None:
    cursor = connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


@contextmanager
def begin(connection: sqlalchemy.Connection) -> Iterator[None]:
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


def check_exists(study: str, names: list[str], storage: str | None) -> None:
    if study not in names:
        raise StudyError(
            f"no study {study!r} in {mask(resolve_url(storage))}; studies there: "
            f"[{', '.join(names)}]"
        )


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


class Outage:
    """One deadline for a whole database outage, however many calls meet it: the first call
    that finds the database gone starts the clock, the first that gets through stops it."""

    def __init__(self, patience_s: float = 120.0) -> None:
        self.patience_s = patience_s
        self.since: float | None = None

    def deadline(self) -> float:
        if self.since is None:
            self.since = time.monotonic()
        return self.since + self.patience_s


def reconnecting(call: Callable[[], T], what: str, outage: Outage | None = None) -> T:
    """Run a database call, waiting out a database that restarts (within ``outage``'s
    patience, counted from when the outage began, not from this call).

    pool_pre_ping replaces connections that died while idle; this covers the calls made while
    the server is down. Each Optuna write is one transaction, so a call that failed wrote
    nothing and is safe to repeat.
    """
    outage = outage or Outage()
    delay = 0.2
    while True:
        try:
            result = call()
            outage.since = None
            return result
        except (optuna.exceptions.StorageInternalError, sqlalchemy.exc.SQLAlchemyError) as e:
            if not connection_lost(e):
                raise
            if time.monotonic() + delay > outage.deadline():
                raise StudyError(
                    f"lost the study database while trying to {what} and it did not come back "
                    f"within {outage.patience_s:g} s: {mask(str(e.__cause__ or e).splitlines()[0])}"
                    "; check the server, then run the same `groupwise launch` again to resume"
                ) from e
            log.warning("database unreachable (%s); retrying in %.1f s", what, delay)
            with interrupts.interruptible():  # the call failed, so it wrote nothing
                time.sleep(delay)
            delay = min(delay * 2, 5.0)


def mask(text: str) -> str:
    """``text`` with the password of any database URL in it replaced by ``***``."""
    return _PASSWORD.sub(r"\1***\2", text)


# scheme://user:PASSWORD@host: the password runs to the last "@" before the host
_PASSWORD = re.compile(r"([a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)[^\s]+?(@[^@\s/]*(?:[/\s]|$))")
