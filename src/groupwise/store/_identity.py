"""A study's identity: what makes a launch the same study as the one in the database.

A study is created stamped with its identity (a fingerprint of its task, search space,
objective, training and seed, and the record the fingerprint hashes), in the transaction that
creates it. A later launch must bring the same identity; a mismatch names the fields that
differ, stored -> this file. Checks here read only: :func:`check_study` and
:func:`check_source` run before Ray starts and write nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import optuna

from groupwise.errors import StudyError
from groupwise.store import _internals
from groupwise.store._attrs import (
    FINGERPRINT_ATTR,
    IDENTITY_ATTR,
    METRIC_ATTR,
    SPACE_ATTR,
    TASK_ATTR,
)
from groupwise.store._counts import Tally, tally, voided_of
from groupwise.store._open import begin, check_exists, mask, open_storage, study_names
from groupwise.store._records import forget_runs

__all__ = ["StudyIdentity", "check_source", "check_study", "claim", "create", "differences"]


@dataclass(frozen=True)
class StudyIdentity:
    """What makes a launch the same study as the one in the database."""

    name: str
    direction: Literal["minimize", "maximize"]
    fingerprint: str  # task, space, objective, training, seed
    metric: str
    task: str
    search_space: str
    record: Mapping[str, Any]  # what the fingerprint hashes (JSON), to say what changed

    def stamp(self) -> dict[str, Any]:
        """The study attributes that make a study this identity's."""
        return {
            FINGERPRINT_ATTR: self.fingerprint,
            IDENTITY_ATTR: dict(self.record),
            TASK_ATTR: self.task,
            METRIC_ATTR: self.metric,
            SPACE_ATTR: self.search_space,
        }


def create(storage: optuna.storages.RDBStorage, identity: StudyIdentity) -> None:
    """Create the study unless it exists, in the transaction that first deletes, on SQLite,
    Optuna's rows whose study or trial is gone (SQLite reuses ids, so the new study would
    adopt them): no other driver's trial can slip in between. The same transaction clears
    groupwise's rows of the name (a deleted namesake's) and stamps this identity, so a driver
    opening the study from another file finds it stamped and is refused: there is no moment
    at which two drivers can both see a new study unclaimed and both claim it."""
    with (
        storage.engine.connect() as connection,
        begin(connection),
        _internals.sessions_on(storage, connection),
    ):
        if identity.name in study_names(storage):
            return
        if connection.dialect.name == "sqlite":
            _internals.purge_orphans(connection)  # before the new study takes the old id
        direction = optuna.study.StudyDirection[identity.direction.upper()]
        try:
            study_id = storage.create_new_study([direction], identity.name)
        except optuna.exceptions.DuplicatedStudyError:
            return  # another driver created it first (PostgreSQL: no lock held up to here)
        forget_runs(connection, identity.name)
        for key, value in identity.stamp().items():
            storage.set_study_user_attr(study_id, key, value)


def claim(study: optuna.Study, identity: StudyIdentity, url: str, write: bool = True) -> None:
    """A study Optuna's own tools made takes this identity (when ``write``); one groupwise
    made must have it already, and a mismatch names the fields that differ."""
    known = study.user_attrs.get(FINGERPRINT_ATTR)
    if known is None and write:
        for key, value in identity.stamp().items():
            study.set_user_attr(key, value)
    elif known is not None and known != identity.fingerprint:
        before = study.user_attrs.get(IDENTITY_ATTR)
        changed = differences(before, identity.record) if isinstance(before, dict) else []
        what = (
            f"these fields (stored -> this file): {'; '.join(changed)}"
            if changed
            else "its task, search space, objective, training or seed"
        )
        raise StudyError(
            f"study {identity.name!r} in {mask(url)} was launched from a study file that differs "
            f"in {what}; give this study file a new name, or launch the original again"
        )
    direction = study.direction.name.lower()
    if direction != identity.direction:
        raise StudyError(
            f"study {identity.name!r} exists with direction {direction}; the study file asks "
            f"for {identity.direction}"
        )


def check_study(url: str, identity: StudyIdentity) -> Tally | None:
    """Read-only, before anything starts: the study's counts if it exists (None if not),
    after checking it is this study. Nothing is created or written."""
    try:
        storage = open_storage(url, create=False)
    except StudyError:
        if url.startswith("sqlite:///"):
            return None  # no database file yet: a new study
        raise
    if identity.name not in study_names(storage):
        return None
    study = optuna.load_study(study_name=identity.name, storage=storage)
    claim(study, identity, url, write=False)
    return tally(study.get_trials(deepcopy=False), identity.direction, voided_of(study.user_attrs))


def check_source(url: str, identity: StudyIdentity, source: str) -> None:
    """Read-only: refuse to warm-start from ``source`` unless it is a study of the same
    task, search space, objective and training in this database (its seed and budget may
    differ), so its values mean what this study's will."""
    storage = open_storage(url, create=False)
    check_exists(source, study_names(storage), url)
    record = optuna.load_study(study_name=source, storage=storage).user_attrs.get(IDENTITY_ATTR)
    if not isinstance(record, dict):
        raise StudyError(
            f"warm_start.studies: study {source!r} was launched by an older groupwise that "
            "did not record its search space; launch it again with this version, or drop it"
        )
    ours = {k: v for k, v in identity.record.items() if k != "seed"}
    theirs = {k: v for k, v in record.items() if k != "seed"}
    changed = differences(theirs, ours)
    if changed:
        raise StudyError(
            f"warm_start.studies: study {source!r} differs from this one in "
            f"{'; '.join(changed)} ({source!r} -> this file); warm-starting needs the same "
            "task, search space, objective and training"
        )


def differences(before: Any, after: Any, path: str = "", limit: int = 6) -> list[str]:
    """``path: old -> new`` for each leaf that differs between two JSON trees (at most
    ``limit``, then how many more)."""
    found: list[str] = []

    def walk(a: Any, b: Any, at: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b), key=str):
                walk(
                    a.get(key, "(absent)"),
                    b.get(key, "(absent)"),
                    f"{at}.{key}" if at else str(key),
                )
        elif a != b:
            found.append(f"{at}: {json.dumps(a)[:60]} -> {json.dumps(b)[:60]}")

    walk(before, after, path)
    more = f"(+{len(found) - limit} more)" if len(found) > limit else ""
    return found[:limit] + ([more] if more else [])
