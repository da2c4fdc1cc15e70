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

import os
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
import sqlalchemy.exc

from groupwise.errors import StudyError

__all__ = [
    "CANONICAL_ATTR",
    "CONFIG_ATTR",
    "DEFAULT_STORAGE",
    "DUPLICATE_ATTR",
    "FINGERPRINT_ATTR",
    "METRIC_ATTR",
    "REASON_ATTR",
    "RUN_ATTR",
    "SPACE_ATTR",
    "TASK_ATTR",
    "WriteThroughStorage",
    "open_storage",
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
FINGERPRINT_ATTR = "groupwise.fingerprint"  # study: task, space, objective, training, seed
TASK_ATTR = "groupwise.task"  # study
METRIC_ATTR = "groupwise.metric"  # study
SPACE_ATTR = "groupwise.search_space"  # study


def resolve_url(url: str | None) -> str:
    return url or os.environ.get("GROUPWISE_STORAGE") or DEFAULT_STORAGE


def open_storage(url: str | None, *, create: bool = False) -> optuna.storages.RDBStorage:
    """Open the study database; with ``create=False`` a missing SQLite file is an error."""
    resolved = resolve_url(url)
    if resolved.startswith("sqlite:///") and not create:
        path = Path(resolved.removeprefix("sqlite:///"))
        if str(path) != ":memory:" and not path.exists():
            raise StudyError(
                f"no study database at {path} (storage {resolved}); run `groupwise launch` first "
                "or pass --storage"
            )
    try:
        storage = optuna.storages.RDBStorage(
            resolved,
            engine_kwargs={"pool_pre_ping": True},
            skip_compatibility_check=False,
        )
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as e:
        detail = str(e).splitlines()[0]
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


def study_names(storage: optuna.storages.RDBStorage) -> list[str]:
    return sorted(s.study_name for s in storage.get_all_studies())


class WriteThroughStorage(optuna.storages.BaseStorage):
    """One study, read from memory, with every write committed to the database first.

    Optuna's samplers read the study's trials on every ``suggest_*`` call; against SQL each of
    those reads is a query (most of a trial's cost, measured in BENCHMARKS.md). The driver is
    the only writer to its study, so an in-memory mirror kept in step by its own writes is
    exact: a write goes to the database, and only when it committed to the mirror. A failed
    write raises before the mirror changes, so memory never holds what the database lacks.

    Only the study named at construction is mirrored; it must be the only one this process
    writes through this object.
    """

    def __init__(self, backend: optuna.storages.BaseStorage, study_name: str) -> None:
        self.backend = backend
        self.memory = optuna.storages.InMemoryStorage()
        self._backend_study = backend.get_study_id_from_name(study_name)
        self._study = self.memory.create_new_study(
            backend.get_study_directions(self._backend_study), study_name
        )
        for key, value in backend.get_study_user_attrs(self._backend_study).items():
            self.memory.set_study_user_attr(self._study, key, value)
        for key, value in backend.get_study_system_attrs(self._backend_study).items():
            self.memory.set_study_system_attr(self._study, key, value)
        self._to_backend: dict[int, int] = {}
        for trial in backend.get_all_trials(self._backend_study, deepcopy=False):
            self._mirror(trial)

    def _mirror(self, trial: optuna.trial.FrozenTrial) -> int:
        trial_id = self.memory.create_new_trial(self._study, template_trial=trial)
        number = self.memory.get_trial_number_from_id(trial_id)
        if number != trial.number:
            raise StudyError(
                f"study mirror out of step (trial {trial.number} became {number}); is another "
                "driver writing to this study?"
            )
        self._to_backend[trial_id] = trial._trial_id
        return trial_id

    def _check(self, study_id: int) -> int:
        if study_id != self._study:
            raise StudyError("WriteThroughStorage mirrors one study; use the database for others")
        return self._backend_study

    # -- writes: the database first, then memory ----------------------------------------------
    def create_new_study(self, directions: Any, study_name: str | None = None) -> int:
        raise StudyError(
            "WriteThroughStorage mirrors an existing study; create studies in the database"
        )

    def delete_study(self, study_id: int) -> None:
        raise StudyError("WriteThroughStorage does not delete studies; use the database")

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        self.backend.set_study_user_attr(self._check(study_id), key, value)
        self.memory.set_study_user_attr(study_id, key, value)

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        self.backend.set_study_system_attr(self._check(study_id), key, value)
        self.memory.set_study_system_attr(study_id, key, value)

    def create_new_trial(self, study_id: int, template_trial: Any = None) -> int:
        backend_id = self.backend.create_new_trial(self._check(study_id), template_trial)
        return self._mirror(self.backend.get_trial(backend_id))

    def set_trial_param(
        self, trial_id: int, param_name: str, param_value_internal: float, distribution: Any
    ) -> None:
        self.backend.set_trial_param(
            self._to_backend[trial_id], param_name, param_value_internal, distribution
        )
        self.memory.set_trial_param(trial_id, param_name, param_value_internal, distribution)

    def set_trial_state_values(self, trial_id: int, state: Any, values: Any = None) -> bool:
        updated = self.backend.set_trial_state_values(self._to_backend[trial_id], state, values)
        if updated:
            self.memory.set_trial_state_values(trial_id, state, values)
        return updated

    def set_trial_intermediate_value(
        self, trial_id: int, step: int, intermediate_value: float
    ) -> None:
        self.backend.set_trial_intermediate_value(
            self._to_backend[trial_id], step, intermediate_value
        )
        self.memory.set_trial_intermediate_value(trial_id, step, intermediate_value)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self.backend.set_trial_user_attr(self._to_backend[trial_id], key, value)
        self.memory.set_trial_user_attr(trial_id, key, value)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self.backend.set_trial_system_attr(self._to_backend[trial_id], key, value)
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
        return self.memory.get_trial(trial_id)

    def get_all_trials(self, study_id: int, deepcopy: bool = True, states: Any = None) -> list[Any]:
        return self.memory.get_all_trials(study_id, deepcopy=deepcopy, states=states)
