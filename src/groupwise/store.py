"""Where studies live: the storage URL, and opening it through Optuna's RDB storage.

Default ``sqlite:///groupwise.db`` (env ``GROUPWISE_STORAGE`` overrides it); PostgreSQL as
``postgresql+psycopg://user@host/db``. Connections are checked before use (pool_pre_ping), so
a database that restarted is reconnected rather than failing the next write. Read-only
commands never create a database: a missing SQLite file is an error, not an empty study.
"""

from __future__ import annotations

import os
from pathlib import Path

import optuna
import sqlalchemy.exc

from groupwise.errors import StudyError

__all__ = ["DEFAULT_STORAGE", "open_storage", "resolve_url", "study_names"]

DEFAULT_STORAGE = "sqlite:///groupwise.db"


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
        return optuna.storages.RDBStorage(
            resolved,
            engine_kwargs={"pool_pre_ping": True},
            skip_compatibility_check=False,
        )
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as e:
        detail = str(e).splitlines()[0]
        raise StudyError(f"cannot open storage {resolved}: {detail}") from e


def study_names(storage: optuna.storages.RDBStorage) -> list[str]:
    return sorted(s.study_name for s in storage.get_all_studies())
