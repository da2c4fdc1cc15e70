from __future__ import annotations

import pytest
import torch

import zoo


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def my_model():
    return zoo.MyModel()


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray cluster for every test that launches a study in-process."""
    import os
    from pathlib import Path

    import ray

    here = str(Path(__file__).parent)
    path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
    ray.init(
        address="local",  # never a cluster some `ray start` left recorded on this machine
        num_cpus=2,
        include_dashboard=False,
        configure_logging=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": path}},
    )
    yield ray
    ray.shutdown()


POSTGRES_ENV = "GROUPWISE_TEST_POSTGRES_URL"


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request, tmp_path):
    """A fresh, empty study database on each backend: a SQLite file, or a new PostgreSQL
    database created for this test (and dropped after) on the server GROUPWISE_TEST_POSTGRES_URL
    names. Without that variable the PostgreSQL runs skip, as they would for a user with no
    database; .ci/run sets it and refuses to run without it."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/study.db"
        return
    import os
    import uuid

    import sqlalchemy

    admin_url = os.environ.get(POSTGRES_ENV)
    if not admin_url:
        pytest.skip(
            f"set {POSTGRES_ENV}=postgresql+psycopg://user@host:5432/db to test on PostgreSQL"
        )
    name = f"groupwise_test_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    url = (
        sqlalchemy.engine.make_url(admin_url)
        .set(database=name)
        .render_as_string(hide_password=False)
    )
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def private_postgres():
    """A PostgreSQL server of this test's own (see private_pg): its url, stop(), start() and
    restart(down_s)."""
    import os

    from private_pg import PrivatePostgres

    if not os.environ.get(POSTGRES_ENV):
        pytest.skip(f"set {POSTGRES_ENV} to run the PostgreSQL tests")
    with PrivatePostgres() as server:
        yield server
