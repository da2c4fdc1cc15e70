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
    """A PostgreSQL server of this test's own (initdb on a free port), so the test can stop
    and restart it without touching the shared one. Yields (url, restart(down_s))."""
    import glob
    import os
    import shutil
    import socket
    import subprocess
    import tempfile
    import time

    if not os.environ.get(POSTGRES_ENV):
        pytest.skip(f"set {POSTGRES_ENV} to run the PostgreSQL tests")
    found = shutil.which("initdb") or next(
        iter(glob.glob("/usr/lib/postgresql/*/bin/initdb")), None
    )
    assert found, "PostgreSQL's server binaries (initdb, pg_ctl) are needed for this test"
    bindir = os.path.dirname(found)
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    data = tempfile.mkdtemp(prefix="groupwise-pg-", dir="/tmp")
    os.chmod(data, 0o700)
    if as_postgres:
        shutil.chown(data, "postgres", "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def pg_ctl(*args: str) -> None:
        subprocess.run(
            [*as_postgres, f"{bindir}/pg_ctl", "-D", data, *args],
            check=True,
            capture_output=True,
            timeout=60,
        )

    subprocess.run(
        [*as_postgres, f"{bindir}/initdb", "-D", data, "-A", "trust", "-U", "postgres"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1"
    pg_ctl("-o", options, "-l", f"{data}/server.log", "-w", "start")

    def restart(down_s: float) -> None:
        pg_ctl("-m", "fast", "-w", "stop")
        time.sleep(down_s)
        pg_ctl("-o", options, "-l", f"{data}/server.log", "-w", "start")

    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", restart
    finally:
        subprocess.run(
            [*as_postgres, f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(data, ignore_errors=True)
