"""StudyReader: one study database opened once, for a process that reads it again and again
(the service).

Opening a storage costs an engine and Optuna's schema check, and reading a study through
Optuna reads every trial, each with its parameters and attributes: on a 1,000-trial study,
most of a read request's time (BENCHMARKS.md, the service). Here the storage is opened once,
and each study read is a :class:`WriteThroughStorage` mirror kept for the reader's life and
brought up to date before every read, reading only the trials that can have changed (new
ones, and those the mirror holds unfinished: finished trials never change).

A study deleted and created again under the same name is noticed (even where SQLite gives it
the old ids) and read anew. Reads are serialised by one lock, so a mirror is never synced by
two threads at once; a Study handed out keeps reading the trials it was handed, which later
syncs replace, not change.
"""

from __future__ import annotations

import threading

import optuna

from groupwise.store._attrs import CONFIG_ATTR
from groupwise.store._mirror import WriteThroughStorage
from groupwise.store._open import check_exists, open_storage, resolve_url, study_names

__all__ = [
    "Source",
    "StudyReader",
    "open_study",
    "opened",
    "source_url",
    "stored_config",
    "study_names_in",
]

PATIENCE_S = 10.0  # a read waits this long for a database that restarts, not a launch's 120 s


class StudyReader:
    """Read studies of one database, each mirrored in memory after its first read."""

    def __init__(self, url: str | None) -> None:
        self.url = resolve_url(url)
        self.storage = open_storage(url, create=True)
        self._mirrors: dict[str, WriteThroughStorage] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return study_names(self.storage)

    def study(self, name: str) -> optuna.Study:
        """The study ``name`` as it is in the database now; StudyError if there is none."""
        with self._lock:
            mirror = self._mirror(name)
            return optuna.load_study(study_name=name, storage=mirror)

    def _mirror(self, name: str) -> WriteThroughStorage:
        try:
            held = self._mirrors.get(name)
            if held is not None and _same_study(held):
                held.sync()
                return held
            mirror = WriteThroughStorage(self.storage, name, patience_s=PATIENCE_S)
        except KeyError:  # none by that name, or deleted since it was looked up
            self._mirrors.pop(name, None)
            check_exists(name, self.names(), self.url)  # raises, naming the studies there
            raise
        self._mirrors[name] = mirror
        return mirror


def _same_study(mirror: WriteThroughStorage) -> bool:
    """Whether the database's study is still the one ``mirror`` holds. A study deleted and
    made again under its name has a new id on PostgreSQL, but on SQLite it (and its trials) may
    take the old ids: its first trial, read back by id, tells the two apart."""
    backend = mirror.backend
    if backend.get_study_id_from_name(mirror.study_name) != mirror.backend_study:
        return False
    first = mirror.backend_id(0)
    if first is None:
        return True  # nothing mirrored yet: a sync reads whatever is there
    try:
        stored = mirror.write("read the study", lambda: backend.get_trial(first))
    except KeyError:
        return False
    held = mirror.get_trial(0)
    return (stored.number, stored.datetime_start) == (held.number, held.datetime_start)


# a database URL (opened per call), a reader, an opened storage, or the default
Source = str | StudyReader | optuna.storages.RDBStorage | None


def opened(storage: Source) -> StudyReader | optuna.storages.RDBStorage:
    """``storage`` opened once, for a call that reads several studies of it."""
    return storage if isinstance(storage, StudyReader) else _rdb(storage)


def _rdb(storage: str | optuna.storages.RDBStorage | None) -> optuna.storages.RDBStorage:
    return storage if isinstance(storage, optuna.storages.RDBStorage) else open_storage(storage)


def open_study(study: str, storage: Source) -> optuna.Study:
    """An existing study by name, to read; a one-line error naming the studies there if not."""
    if isinstance(storage, StudyReader):
        return storage.study(study)
    rdb = _rdb(storage)
    check_exists(study, study_names(rdb), source_url(storage))
    return optuna.load_study(study_name=study, storage=rdb)


def source_url(storage: Source) -> str:
    """The database URL a source reads."""
    if isinstance(storage, StudyReader | optuna.storages.RDBStorage):
        return str(storage.url)
    return resolve_url(storage)


def study_names_in(storage: Source) -> list[str]:
    """The names of the studies in a database, sorted."""
    if isinstance(storage, StudyReader):
        return storage.names()
    return study_names(_rdb(storage))


def stored_config(study: str, number: int, storage: Source) -> str | None:
    """Trial ``number``'s config as JSON, as the study records it (None: not groupwise's)."""
    config = open_study(study, storage).trials[number].user_attrs.get(CONFIG_ATTR)
    return None if config is None else str(config)
