"""Writing and reading groupwise's tables. The ledger writes through these functions on the
connection of a :meth:`WriteThroughStorage.transaction`, so each row lands in the same
transaction as the Optuna writes it goes with. Readers outside ``store`` get plain data
(:func:`runs_of`, :func:`epochs_of`), never a connection."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import optuna
import sqlalchemy
from sqlalchemy import delete, insert, select, update

from groupwise.errors import StudyError
from groupwise.store._attrs import CONFIG_ATTR, REASON_ATTR
from groupwise.store._migrate import revision_of
from groupwise.store._open import open_storage
from groupwise.store._tables import EpochRow, GroupRow, RunRow

__all__ = [
    "GroupFacts",
    "RunFacts",
    "add_epoch",
    "end_run",
    "epochs_of",
    "forget_runs",
    "has_run_tables",
    "read_epochs",
    "read_groups",
    "read_runs",
    "runs_of",
    "start_run",
]


@dataclass(frozen=True)
class GroupFacts:
    """A group of a trial's partition: its label, and the tensors it holds. (Its optimizer and
    settings are the trial's config, on the Optuna trial: not copied here.)"""

    label: str
    parameter_names: Sequence[str]
    parameter_count: int


@dataclass(frozen=True)
class RunFacts:
    """Where and how long a trial's run went, as its driver saw it. The record is its row in
    ``groupwise_runs``; :meth:`attribute` is the copy optuna-dashboard shows (``groupwise.run``),
    written beside it by the ledger in the same transaction."""

    wall_s: float
    driver: str
    host: str | None = None
    pid: int | None = None
    node: str | None = None
    device: str | None = None
    gpu_ids: tuple[str, ...] = ()
    visible_devices: str | None = None
    peak_memory_bytes: int | None = None
    # how it trained: precision, accumulate, clip norm, total steps, compile and its seconds
    training: Mapping[str, Any] | None = None

    def attribute(self) -> dict[str, Any]:
        """As the ``groupwise.run`` trial attribute (JSON)."""
        training = None if self.training is None else dict(self.training)
        return {**dataclasses.asdict(self), "gpu_ids": list(self.gpu_ids), "training": training}

    def columns(self) -> dict[str, Any]:
        """As ``groupwise_runs`` columns (the driver's is written when the run starts)."""
        return {k: v for k, v in self.attribute().items() if k != "driver"}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def start_run(
    connection: sqlalchemy.Connection,
    *,
    study: str,
    trial_number: int,
    attempt: int,
    retry_of: int | None,
    groups: Sequence[GroupFacts],
    driver: str,
    duplicate_of: int | None = None,
) -> int:
    run_id = connection.execute(
        insert(RunRow)
        .values(
            study=study,
            trial_number=trial_number,
            attempt=attempt,
            retry_of=retry_of,
            state="RUNNING",
            started_at=utcnow(),
            driver=driver,
            duplicate_of=duplicate_of,
        )
        .returning(RunRow.id)
    ).scalar_one()
    if groups:
        connection.execute(
            insert(GroupRow),
            [
                {
                    "run_id": run_id,
                    "label": g.label,
                    "parameter_names": list(g.parameter_names),
                    "parameter_count": g.parameter_count,
                }
                for g in groups
            ],
        )
    return int(run_id)


def add_epoch(
    connection: sqlalchemy.Connection,
    run_id: int,
    *,
    epoch: int,
    train_loss: float,
    metrics: Mapping[str, float],
    metric: str,
    lrs: Mapping[str, float],
    elapsed_s: float,
) -> None:
    connection.execute(
        insert(EpochRow).values(
            run_id=run_id,
            epoch=epoch,
            train_loss=_finite(train_loss),
            val_loss=_finite(metrics.get("val_loss")),
            metric=_finite(metrics.get(metric)),
            metrics={k: _finite(v) for k, v in metrics.items()},
            lrs=dict(lrs),
            elapsed_s=elapsed_s,
        )
    )


def end_run(
    connection: sqlalchemy.Connection,
    study: str,
    trial: optuna.trial.FrozenTrial,
    facts: RunFacts | None = None,
) -> None:
    """Close a trial's run row from the trial as Optuna recorded its end (state, value and
    fail reason are copied from there, the one place they are decided), with ``facts`` of
    where it ran. A trial with no row (started before these tables existed) is left alone."""
    connection.execute(
        update(RunRow)
        .where(RunRow.study == study, RunRow.trial_number == trial.number)
        .values(
            state=trial.state.name,
            value=_finite(trial.value),
            reason=str(trial.user_attrs.get(REASON_ATTR, "")) or None,
            ended_at=utcnow(),
            **(facts.columns() if facts else {}),
        )
    )


def forget_runs(connection: sqlalchemy.Connection, study: str) -> None:
    """Delete every groupwise row of ``study`` (its epochs and groups go with its runs): for a
    study deleted with Optuna's tools, whose name a new study takes."""
    runs = select(RunRow.id).where(RunRow.study == study)
    connection.execute(delete(EpochRow).where(EpochRow.run_id.in_(runs)))
    connection.execute(delete(GroupRow).where(GroupRow.run_id.in_(runs)))
    connection.execute(delete(RunRow).where(RunRow.study == study))


def _finite(value: float | None) -> float | None:
    """JSON and some databases have no NaN or infinity: store them as missing."""
    if value is None or value != value or value in (float("inf"), float("-inf")):
        return None
    return float(value)


# -- reads ---------------------------------------------------------------------------------------
def read_runs(connection: sqlalchemy.Connection, study: str) -> list[RunRow]:
    query = select(RunRow).where(RunRow.study == study).order_by(RunRow.trial_number)
    return list(sqlalchemy.orm.Session(connection).scalars(query))


def read_epochs(connection: sqlalchemy.Connection, study: str) -> list[tuple[int, EpochRow]]:
    """(trial number, epoch row) for every epoch of every run of ``study``."""
    return _per_trial(connection, study, EpochRow, EpochRow.epoch)


def read_groups(connection: sqlalchemy.Connection, study: str) -> list[tuple[int, GroupRow]]:
    """(trial number, group row) for every group of every run of ``study``."""
    return _per_trial(connection, study, GroupRow, GroupRow.label)


Row = TypeVar("Row", EpochRow, GroupRow)


def _per_trial(
    connection: sqlalchemy.Connection, study: str, table: type[Row], order: Any
) -> list[tuple[int, Row]]:
    query = (
        select(RunRow.trial_number, table)
        .join(table, table.run_id == RunRow.id)
        .where(RunRow.study == study)
        .order_by(RunRow.trial_number, order)
    )
    return [(int(n), row) for n, row in sqlalchemy.orm.Session(connection).execute(query)]


# -- plain data for readers outside store ------------------------------------------------------
def has_run_tables(storage: str | None) -> bool:
    """Whether the database has groupwise's tables (an older groupwise's has only Optuna's)."""
    return revision_of(open_storage(storage).engine) is not None


def runs_of(storage: str | None, study: str) -> list[dict[str, Any]]:
    """Every run of ``study`` (column -> value), by trial number, each with ``config``: its
    trial's TrialConfig as plain data (None for a trial groupwise did not sample), read from
    the Optuna trial that records it."""
    configs = _configs(storage, study)
    with _connect(storage, study) as connection:
        runs = read_runs(connection, study)
        return [_plain(run) | {"config": configs.get(run.trial_number)} for run in runs]


def _configs(storage: str | None, study: str) -> dict[int, dict[str, Any]]:
    trials = optuna.load_study(study_name=study, storage=open_storage(storage)).get_trials(
        deepcopy=False
    )
    return {
        t.number: json.loads(t.user_attrs[CONFIG_ATTR])
        for t in trials
        if CONFIG_ATTR in t.user_attrs
    }


def epochs_of(storage: str | None, study: str) -> list[dict[str, Any]]:
    """Every epoch of every run of ``study`` (column -> value, and ``trial``)."""
    with _connect(storage, study) as connection:
        return [{"trial": n, **_plain(row)} for n, row in read_epochs(connection, study)]


def _connect(storage: str | None, study: str) -> sqlalchemy.Connection:
    engine = open_storage(storage).engine
    if revision_of(engine) is None:
        raise StudyError(
            f"the database of study {study!r} has no groupwise run tables (it was written by "
            "an older groupwise); launch the study again with this version to record runs"
        )
    return engine.connect()


def _plain(row: RunRow | EpochRow) -> dict[str, Any]:
    return {column.key: getattr(row, column.key) for column in row.__table__.columns}
