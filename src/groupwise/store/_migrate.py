"""Creating and upgrading groupwise's tables with Alembic, from the first table on."""

from __future__ import annotations

import time
from pathlib import Path

import sqlalchemy
import sqlalchemy.exc
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

__all__ = ["VERSION_TABLE", "alembic_config", "head_revision", "migrate", "revision_of"]

VERSION_TABLE = "groupwise_alembic_version"
MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(connection: sqlalchemy.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def revision_of(engine: sqlalchemy.Engine) -> str | None:
    """The database's groupwise schema revision; None when it has no groupwise tables."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def migrate(engine: sqlalchemy.Engine) -> None:
    """Bring groupwise's tables to the newest revision (Optuna's are not touched).

    Two drivers starting on a new database at once may both try; the loser sees the winner's
    tables and tries again.
    """
    head = head_revision()
    for attempt in range(3):
        if revision_of(engine) == head:
            return
        try:
            with engine.begin() as connection:
                command.upgrade(alembic_config(connection), "head")
            return
        except sqlalchemy.exc.SQLAlchemyError:
            if attempt == 2:
                raise
            time.sleep(0.5)
