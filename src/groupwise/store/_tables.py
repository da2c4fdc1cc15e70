"""groupwise's own tables, beside Optuna's in the same database, on their own metadata.

Optuna's tables stay untouched (optuna-dashboard and the optuna CLI read the database as it
is); these hold what Optuna has no place for. They are created and upgraded by Alembic
(``store/migrations``, version table ``groupwise_alembic_version``), never by create_all.

- ``groupwise_runs``: one row per attempt of a trial (a retry is a new Optuna trial and a
  new run with its ``attempt``): where it ran (driver, host, pid, node, device, GPUs), when,
  how long, peak memory. Its state, value and failure reason are copied from the Optuna
  trial when it ends, so SQL sees each attempt's outcome beside its run.
- ``groupwise_epochs``: per run and epoch, the train loss, validation metrics, each group's
  lr and the elapsed time.
- ``groupwise_groups``: per run and group label, the parameter names and their count (the
  group's optimizer and settings are in the trial's config, on the Optuna trial).

Which copy of a fact is its record, and why the others exist: ARCHITECTURE.md.
- ``groupwise_jobs``: studies submitted to the service (``groupwise serve``): the study as
  submitted, its state (queued, running, stopping, finished, stopped, failed) and why, and a
  stop request. A job's state lives here so that it outlives the server.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["Base", "EpochRow", "GroupRow", "JobRow", "RunRow"]

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class RunRow(Base):
    __tablename__ = "groupwise_runs"
    __table_args__ = (UniqueConstraint("study", "trial_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study: Mapped[str] = mapped_column(String(512), index=True)
    trial_number: Mapped[int] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    retry_of: Mapped[int | None] = mapped_column(Integer)  # the first attempt's trial number
    # copied from the Optuna trial as it ends (the record): RUNNING, COMPLETE, PRUNED, FAIL
    state: Mapped[str] = mapped_column(String(16))
    value: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str | None] = mapped_column(Text)
    driver: Mapped[str] = mapped_column(String(255))  # host:pid of the driver that ran it
    host: Mapped[str | None] = mapped_column(String(255))  # of the worker
    pid: Mapped[int | None] = mapped_column(Integer)  # of the worker
    node: Mapped[str | None] = mapped_column(String(255))
    device: Mapped[str | None] = mapped_column(String(64))
    gpu_ids: Mapped[list[str] | None] = mapped_column(JSON)
    visible_devices: Mapped[str | None] = mapped_column(String(255))
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))  # UTC
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    wall_s: Mapped[float | None] = mapped_column(Float)
    peak_memory_bytes: Mapped[int | None] = mapped_column(BigInteger)
    # how it trained: precision, accumulate, clip norm, total steps, compile (and its seconds)
    training: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    duplicate_of: Mapped[int | None] = mapped_column(Integer)  # replayed from this trial


class EpochRow(Base):
    __tablename__ = "groupwise_epochs"

    run_id: Mapped[int] = mapped_column(
        ForeignKey("groupwise_runs.id", ondelete="CASCADE"), primary_key=True
    )
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)  # 1-based
    train_loss: Mapped[float | None] = mapped_column(Float)  # None: a function task had none
    val_loss: Mapped[float | None] = mapped_column(Float)
    metric: Mapped[float | None] = mapped_column(Float)  # the study's objective metric
    metrics: Mapped[dict[str, float]] = mapped_column(JSON)  # every metric the task reports
    lrs: Mapped[dict[str, float]] = mapped_column(JSON)  # group label -> lr at epoch end
    elapsed_s: Mapped[float] = mapped_column(Float)


class GroupRow(Base):
    __tablename__ = "groupwise_groups"

    run_id: Mapped[int] = mapped_column(
        ForeignKey("groupwise_runs.id", ondelete="CASCADE"), primary_key=True
    )
    label: Mapped[str] = mapped_column(String(255), primary_key=True)
    parameter_names: Mapped[list[str]] = mapped_column(JSON)
    parameter_count: Mapped[int] = mapped_column(BigInteger)


class JobRow(Base):
    __tablename__ = "groupwise_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study: Mapped[str] = mapped_column(String(128), unique=True)
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)  # the study, its space inline
    fingerprint: Mapped[str] = mapped_column(String(64))
    submitted_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))  # UTC, first
    resubmitted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))  # first
    run_started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    run_s: Mapped[float] = mapped_column(Float, default=0.0)  # the ended launches' seconds
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    runner: Mapped[str | None] = mapped_column(String(255))  # host:pid of the serving server
    stop_requested_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
