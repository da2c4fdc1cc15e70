"""Alembic environment for groupwise's own tables (run by store.migrate, not the alembic CLI
alone). Its version table is groupwise_alembic_version: Optuna keeps its own alembic_version
in the same database."""

from __future__ import annotations

from alembic import context

from groupwise.store._tables import Base

VERSION_TABLE = "groupwise_alembic_version"

connection = context.config.attributes.get("connection")
if connection is None:  # the alembic CLI with sqlalchemy.url set in alembic.ini
    from sqlalchemy import create_engine

    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("set sqlalchemy.url (the study database) to run these migrations")
    connection = create_engine(url).connect()


def _ours(name: str | None, type_: str, parent: object) -> bool:
    """Autogenerate compares groupwise's tables only; Optuna's are Optuna's."""
    return type_ != "table" or bool(name and name.startswith("groupwise_"))


context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table=VERSION_TABLE,
    include_name=_ours,
    render_as_batch=True,  # SQLite alters tables by copying them
)
with context.begin_transaction():
    context.run_migrations()
