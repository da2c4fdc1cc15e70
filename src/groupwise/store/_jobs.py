"""Jobs: studies submitted to the service, in ``groupwise_jobs``, so that they outlive the
server that runs them. Each call is one transaction; readers get :class:`Job` records.

A job's life: ``queued`` (submitted) -> ``running`` (a server started its launch) -> one of
``finished`` (its budget spent), ``stopped`` (on request; running trials finished first) or
``failed`` (with the launch's one-line reason). ``stopping`` is ``running`` with a stop
asked for. Resubmitting a study queues it again with its new budget.

A job's clock: ``submitted_at`` and ``started_at`` are its first submission and its first
start, kept through resubmissions and server restarts; its elapsed time is the time its
launches have run, in all (``run_s`` for those that ended, and the one running now from
``run_started_at``). A server that stops cleanly pauses the clock; one that died did not, so
the launch it ran is counted up to when the next server takes the job over.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy
from sqlalchemy import select

from groupwise.errors import StudyError
from groupwise.store._migrate import migrate
from groupwise.store._open import open_storage
from groupwise.store._records import utcnow
from groupwise.store._tables import JobRow

__all__ = ["ACTIVE", "FINAL", "Job", "JobState", "Jobs"]

JobState = Literal["queued", "running", "stopping", "finished", "stopped", "failed"]
ACTIVE: tuple[JobState, ...] = ("queued", "running", "stopping")
FINAL: tuple[JobState, ...] = ("finished", "stopped", "failed")


@dataclass(frozen=True)
class Job:
    study: str
    state: JobState
    reason: str | None
    document: Mapping[str, Any]
    fingerprint: str
    submitted_at: dt.datetime  # first submitted
    resubmitted_at: dt.datetime | None  # last submitted again (a new budget, or to follow it)
    started_at: dt.datetime | None  # first started
    run_started_at: dt.datetime | None  # the launch running now started (None: none runs)
    run_s: float  # seconds the launches that ended ran
    ended_at: dt.datetime | None
    runner: str | None
    stop_requested: bool

    def elapsed_s(self, now: dt.datetime | None = None) -> float | None:
        """Seconds the job's launches have run, in all (None: never started)."""
        if self.started_at is None:
            return None
        running = self.run_started_at
        extra = ((now or utcnow()) - running).total_seconds() if running else 0.0
        return self.run_s + max(extra, 0.0)

    @classmethod
    def of(cls, row: JobRow) -> Job:
        return cls(
            study=row.study,
            state=row.state,  # type: ignore[arg-type]  # only JobState values are written
            reason=row.reason,
            document=row.document,
            fingerprint=row.fingerprint,
            submitted_at=_utc(row.submitted_at),
            resubmitted_at=_utc(row.resubmitted_at) if row.resubmitted_at else None,
            started_at=_utc(row.started_at) if row.started_at else None,
            run_started_at=_utc(row.run_started_at) if row.run_started_at else None,
            run_s=row.run_s or 0.0,
            ended_at=_utc(row.ended_at) if row.ended_at else None,
            runner=row.runner,
            stop_requested=row.stop_requested_at is not None,
        )


def _utc(moment: dt.datetime) -> dt.datetime:
    """SQLite hands timestamps back without their zone; every one groupwise writes is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


class Jobs:
    """The jobs of one database."""

    def __init__(self, url: str | None) -> None:
        storage = open_storage(url, create=True)
        migrate(storage.engine)
        self.engine = storage.engine

    def _session(self) -> sqlalchemy.orm.Session:
        return sqlalchemy.orm.Session(self.engine, expire_on_commit=False)

    def submit(self, study: str, document: Mapping[str, Any], fingerprint: str) -> Job:
        """Queue ``study``: a new job, or an existing one of the same fingerprint again (with
        this document's budget). A running one keeps running with the new budget read at its
        next launch; one of another fingerprint is refused."""
        with self._session() as session, session.begin():
            row = session.scalars(select(JobRow).where(JobRow.study == study)).one_or_none()
            if row is None:
                row = JobRow(
                    study=study,
                    state="queued",
                    document=dict(document),
                    fingerprint=fingerprint,
                    submitted_at=utcnow(),
                )
                session.add(row)
            elif row.fingerprint != fingerprint:
                raise StudyError(
                    f"study {study!r} was submitted before with another task, search space, "
                    "objective, training or seed; give this study a new name"
                )
            else:
                row.document = dict(document)
                row.resubmitted_at = utcnow()
                row.stop_requested_at = None
                row.reason = None
                if row.state in FINAL:
                    row.state, row.ended_at = "queued", None
                elif row.state == "stopping":  # the stop is withdrawn; if the launch has
                    row.state = "running"  # stopped already, the runner queues it again
            session.flush()
            return Job.of(row)

    def get(self, study: str) -> Job | None:
        with self._session() as session:
            row = session.scalars(select(JobRow).where(JobRow.study == study)).one_or_none()
            return None if row is None else Job.of(row)

    def all(self) -> list[Job]:
        with self._session() as session:
            return [Job.of(r) for r in session.scalars(select(JobRow).order_by(JobRow.id))]

    def claim(self, study: str, runner: str) -> bool:
        """Mark an active job as run by ``runner`` (``stopping`` if a stop was asked for);
        False if it is no longer active. A launch left running by a server that died is
        counted up to now."""
        now = utcnow()
        with self._session() as session, session.begin():
            row = session.scalars(
                select(JobRow).where(JobRow.study == study, JobRow.state.in_(ACTIVE))
            ).one_or_none()
            if row is None:
                return False
            row.state = "stopping" if row.stop_requested_at is not None else "running"
            row.runner, row.reason = runner, None
            row.started_at = row.started_at or now
            _stop_clock(row, now)
            row.run_started_at = now
            return True

    def end(self, study: str, state: JobState, reason: str | None = None) -> None:
        now = utcnow()
        with self._session() as session, session.begin():
            row = session.scalars(
                select(JobRow).where(JobRow.study == study, JobRow.state.in_(ACTIVE))
            ).one_or_none()
            if row is not None:
                row.state, row.reason, row.ended_at = state, reason, now
                row.stop_requested_at = None
                _stop_clock(row, now)

    def pause(self, study: str) -> None:
        """The job's launch was stopped with its server: the job stays active (the next
        server resumes it), its clock stops until then."""
        with self._session() as session, session.begin():
            row = session.scalars(select(JobRow).where(JobRow.study == study)).one_or_none()
            if row is not None:
                _stop_clock(row, utcnow())

    def requeue(self, study: str) -> None:
        """Queue an active job again (resubmitted with a new budget while it ran)."""
        with self._session() as session, session.begin():
            row = session.scalars(
                select(JobRow).where(JobRow.study == study, JobRow.state.in_(ACTIVE))
            ).one_or_none()
            if row is not None:
                row.state = "queued"
                _stop_clock(row, utcnow())

    def request_stop(self, study: str) -> Job:
        """Ask the job's launch to start no more trials; a queued job stops at once."""
        with self._session() as session, session.begin():
            row = session.scalars(select(JobRow).where(JobRow.study == study)).one_or_none()
            if row is None:
                raise StudyError(f"no job for study {study!r}; submit it first")
            if row.state == "queued":
                row.state, row.ended_at = "stopped", utcnow()
                row.reason = "stopped before it started"
            elif row.state == "running":
                row.state, row.stop_requested_at = "stopping", utcnow()
            session.flush()
            return Job.of(row)


def _stop_clock(row: JobRow, now: dt.datetime) -> None:
    """Add the running launch's time, if one runs, to the job's ``run_s``."""
    if row.run_started_at is not None:
        row.run_s = (row.run_s or 0.0) + max((now - _utc(row.run_started_at)).total_seconds(), 0)
        row.run_started_at = None


def stop_requested(connection: sqlalchemy.Connection, study: str) -> bool:
    """Whether the service asked ``study``'s launches to stop starting trials."""
    found = connection.execute(
        select(JobRow.id).where(JobRow.study == study, JobRow.stop_requested_at.is_not(None))
    ).first()
    return found is not None
