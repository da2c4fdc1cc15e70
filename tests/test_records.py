"""groupwise's own tables: migrated by Alembic beside Optuna's, written by the driver in the
same transactions as its Optuna writes, and equal to what Optuna holds. On SQLite and on
real PostgreSQL."""

from __future__ import annotations

import json

import optuna
import pytest
import sqlalchemy
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from optuna.trial import TrialState

from groupwise.config import TrialConfig
from groupwise.execution import launch
from groupwise.partition import trainable_parameters
from groupwise.store import CONFIG_ATTR, RunFacts, open_storage, runs_of
from groupwise.store._attrs import RUN_ATTR
from groupwise.store._migrate import (
    VERSION_TABLE,
    alembic_config,
    head_revision,
    migrate,
    revision_of,
)
from groupwise.store._mirror import WriteThroughStorage
from groupwise.store._records import read_epochs, read_groups, read_runs, start_run
from groupwise.store._tables import Base
from groupwise.studyfiles import read_study
from groupwise.tasks import resolve_task
from test_execution import make_study


def test_migrations_build_exactly_the_models_and_leave_optuna_alone(storage_url):
    storage = open_storage(storage_url, create=True)  # Optuna's tables, at Optuna's version
    optuna_tables = set(sqlalchemy.inspect(storage.engine).get_table_names())
    optuna_version = storage.get_current_version()
    assert revision_of(storage.engine) is None

    migrate(storage.engine)
    migrate(storage.engine)  # a second time is a no-op

    assert revision_of(storage.engine) == head_revision()
    tables = set(sqlalchemy.inspect(storage.engine).get_table_names())
    assert tables - optuna_tables == {
        VERSION_TABLE,
        "groupwise_runs",
        "groupwise_epochs",
        "groupwise_groups",
        "groupwise_jobs",
    }
    assert storage.get_current_version() == optuna_version
    with storage.engine.connect() as connection:  # the migrations match the models exactly
        context = MigrationContext.configure(
            connection,
            opts={
                "version_table": VERSION_TABLE,
                "include_name": lambda n, t, p: t != "table" or n.startswith("groupwise_"),
            },
        )
        assert compare_metadata(context, Base.metadata) == []


@pytest.mark.usefixtures("ray_local")
def test_runs_epochs_and_groups_agree_with_optuna(tmp_path, storage_url):
    launch(read_study(make_study(tmp_path, trials=6, epochs=3)), storage=storage_url)

    trials = optuna.load_study(study_name="s", storage=storage_url).get_trials()
    engine = open_storage(storage_url).engine
    with engine.connect() as connection:
        runs = {r.trial_number: r for r in read_runs(connection, "s")}
        epochs = read_epochs(connection, "s")
        groups = read_groups(connection, "s")
    listed = {r["trial_number"]: r for r in runs_of(storage_url, "s")}
    assert sorted(runs) == [t.number for t in trials] == sorted(listed)
    model = resolve_task("user_tasks:tiny", {}, seed=0).build_model()
    numel = {p.name: p.param.numel() for p in trainable_parameters(model)}
    for t in trials:
        run = runs[t.number]
        config = TrialConfig.from_json(t.user_attrs[CONFIG_ATTR])
        assert run.state == t.state.name == "COMPLETE" and run.value == t.value
        assert run.attempt == 1 and run.retry_of is None and run.reason is None
        assert run.started_at <= run.ended_at and run.wall_s > 0 and run.peak_memory_bytes > 0
        assert run.host and run.device == "cpu" and run.driver and run.pid
        # The run row is the record of where it ran; the dashboard's attribute is its copy.
        shown = t.user_attrs[RUN_ATTR]
        facts = RunFacts(**shown | {"gpu_ids": tuple(shown["gpu_ids"])})
        assert facts.attribute() == shown and run.gpu_ids == []
        assert {k: getattr(run, k) for k in facts.columns()} == facts.columns()
        # The config's one record is the trial's attribute; a run reads it from there.
        assert listed[t.number]["config"] == config.to_dict()
        mine = [e for n, e in epochs if n == t.number]
        # Each epoch's metric is what Optuna got as its intermediate value, bit for bit.
        assert {e.epoch: e.metric for e in mine} == t.intermediate_values
        assert all(set(e.lrs) == set(config.groups) for e in mine)
        assert [e.elapsed_s for e in mine] == sorted(e.elapsed_s for e in mine)
        its = {g.label: g for n, g in groups if n == t.number}
        assert set(its) == set(config.groups)
        names = [name for g in its.values() for name in g.parameter_names]
        assert sorted(names) == sorted(numel)  # every parameter in exactly one group
        for g in its.values():
            assert g.parameter_count == sum(numel[n] for n in g.parameter_names)


def test_a_transaction_that_fails_leaves_neither_optunas_writes_nor_ours(storage_url):
    backend = open_storage(storage_url, create=True)
    migrate(backend.engine)
    optuna.create_study(study_name="t", storage=backend)
    mirror = WriteThroughStorage(backend, "t")
    study = optuna.load_study(study_name="t", storage=mirror)
    kept = study.ask()
    kept.suggest_float("x", 0, 1)

    def crash_midway() -> None:
        with mirror.transaction() as connection:
            doomed = study.ask()  # a new trial, a parameter, an attribute ...
            doomed.suggest_float("x", 0, 1)
            doomed.set_user_attr("note", "half-recorded")
            study.tell(kept, 0.5)  # ... a finished trial ...
            start_run(  # ... and groupwise's row
                connection,
                study="t",
                trial_number=doomed.number,
                attempt=1,
                retry_of=None,
                groups=[],
                driver="test",
            )
            raise RuntimeError("crash before commit")

    with pytest.raises(RuntimeError, match="crash"):
        crash_midway()

    fresh = optuna.load_study(study_name="t", storage=storage_url).get_trials()
    assert [(t.number, t.state) for t in fresh] == [(0, TrialState.RUNNING)]
    with backend.engine.connect() as connection:
        assert read_runs(connection, "t") == []
    # The mirror forgot what was rolled back, and the study goes on from there.
    assert [(t.number, t.state) for t in study.get_trials()] == [(0, TrialState.RUNNING)]
    with mirror.transaction():
        study.tell(kept, 0.25)
    assert optuna.load_study(study_name="t", storage=storage_url).best_value == 0.25
    assert mirror.rebuilds == 1


def test_a_database_from_before_the_one_record_upgrades_and_reads_the_same(storage_url):
    """Revision 0003 drops the copies of a trial's config from groupwise's tables (runs'
    config and scheme, groups' optimizer and settings): a database written before it upgrades
    with nothing lost, its runs read their config from the trial as new ones do, and a
    downgrade fills the copies back in from there."""
    storage = open_storage(storage_url, create=True)
    config = {"scheme": "single", "groups": {"all": {"optimizer": "adamw", "lr": 0.01}}}
    study = optuna.create_study(study_name="old", storage=storage)
    trial = study.ask()
    trial.set_user_attr(CONFIG_ATTR, json.dumps(config))
    study.tell(trial, 1.5)
    with storage.engine.begin() as connection:  # groupwise at revision 0002, and its rows
        command.upgrade(alembic_config(connection), "0002")
        connection.exec_driver_sql(
            "INSERT INTO groupwise_runs (id, study, trial_number, attempt, state, value, driver, "
            "started_at, scheme, config) VALUES (1, 'old', 0, 1, 'COMPLETE', 1.5, 'd', "
            f"CURRENT_TIMESTAMP, 'single', '{json.dumps(config)}')"
        )
        connection.exec_driver_sql(
            "INSERT INTO groupwise_groups (run_id, label, optimizer, hyperparameters, "
            """parameter_names, parameter_count) VALUES (1, 'all', 'adamw', '{"lr": 0.01}', """
            """'["w"]', 4)"""
        )
    assert revision_of(storage.engine) == "0002"

    migrate(storage.engine)
    assert revision_of(storage.engine) == head_revision()
    (run,) = runs_of(storage_url, "old")
    assert run["config"] == config and run["state"] == "COMPLETE" and run["value"] == 1.5
    with storage.engine.connect() as connection:
        (group,) = (g for _, g in read_groups(connection, "old"))
    assert (group.label, group.parameter_names, group.parameter_count) == ("all", ["w"], 4)

    with storage.engine.begin() as connection:
        command.downgrade(alembic_config(connection), "0002")
        row = connection.exec_driver_sql("SELECT config, scheme FROM groupwise_runs").one()
        copied = connection.exec_driver_sql(
            "SELECT optimizer, hyperparameters FROM groupwise_groups"
        ).one()

    def plain(value):  # a JSON column: text on SQLite, decoded on PostgreSQL
        return json.loads(value) if isinstance(value, str) else value

    assert plain(row[0]) == config and row[1] == "single"
    assert copied[0] == "adamw" and plain(copied[1]) == {"lr": 0.01}
