"""Liveness: which trials are alive, what is lost and retried, and who else writes the study.

A driver beats for its running trials (Optuna's heartbeat table, so the optuna CLI agrees);
a RUNNING trial whose heartbeat went stale lost its driver, and whichever driver sees that
first fails it and retries it (:meth:`Liveness.lose`, as for a worker lost under a trial or
a driver interrupted). Other drivers' trials reach
this one's mirror at each :meth:`Liveness.sync`. A service's stop request is read here too: it
is the one other writer a launch listens to.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

import optuna
import sqlalchemy
from optuna.trial import TrialState

from groupwise.store import _internals
from groupwise.store._attrs import (
    ATTEMPT_ATTR,
    CONFIRMS_ATTR,
    DEATHS_ATTR,
    LOST_ATTR,
    REASON_ATTR,
    RETRIED_ATTR,
    RETRY_OF_ATTR,
    TRAIN_SEED_ATTR,
)
from groupwise.store._jobs import stop_requested
from groupwise.store._open import reconnecting
from groupwise.store._records import end_run
from groupwise.store._trial import Lost

if TYPE_CHECKING:
    from groupwise.store._ledger import Ledger

__all__ = ["Liveness"]

log = logging.getLogger("groupwise")


class Liveness:
    """The heartbeats and syncs of one ledger's study."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.mirror = ledger.mirror

    def heartbeat(self, numbers: Iterable[int]) -> None:
        """Mark these running trials alive (a trial not yet written gets its first beat when
        it is)."""
        for number in numbers:
            backend_id = self.mirror.backend_id(number)
            if backend_id is not None:
                beat = functools.partial(
                    _internals.record_heartbeat, self.mirror.backend, backend_id
                )
                self.mirror.write("record a heartbeat", beat)

    def beating(self) -> set[int]:
        """RUNNING trials that have a heartbeat at all, live or stale."""
        ids = self.mirror.write(
            "read the heartbeats",
            lambda: _internals.with_heartbeat(self.mirror.backend, self.mirror.backend_study),
        )
        return self.mirror.numbers_of(ids)

    def stale(self) -> list[int]:
        """Numbers of RUNNING trials whose driver stopped beating."""
        ids = self.mirror.write(
            "look for stale trials",
            lambda: _internals.stale_trial_ids(self.mirror.backend, self.mirror.backend_study),
        )
        return sorted(self.mirror.numbers_of(ids))

    def adopt_running(self, stale_reason: str) -> list[int]:
        """The RUNNING trials found at open. Those whose heartbeat is already stale (their
        driver died) are failed and retried at once, with ``stale_reason``; those that never had
        a heartbeat (a crash before the first one, an older groupwise) get one, so they go stale
        in their turn instead of being waited for forever; a live driver's are left alone.
        Returns the numbers adopted (given a heartbeat): the launch waits for them to end or
        go stale, since they hold part of its budget."""
        stale = self.stale()
        for number in stale:
            self.lose(number, stale_reason)
        beating = self.beating()
        running = self.mirror.get_all_trials(
            self.mirror.study_id, deepcopy=False, states=(TrialState.RUNNING,)
        )
        adopted = [t.number for t in running if t.number not in beating and t.number not in stale]
        self.heartbeat(adopted)
        return adopted

    def still_running(self, numbers: Iterable[int]) -> set[int]:
        """Which of these trials are still running (in this driver's copy of the study)."""
        return {n for n in numbers if self.mirror.get_trial(n).state == TrialState.RUNNING}

    def lose(self, number: int, reason: str) -> Lost | None:
        """Fail a trial the machinery lost and, unless its own runs have died too often,
        enqueue its parameters again, in one transaction. Whoever fails it first (this driver
        or another) retries it. Returns how it ended (None: it had already ended).

        Only the trial's own deaths (``worker lost``: its process died under it) count
        against ``max_retries``; an interrupted or stale driver is not the trial's fault, so
        its trial is retried however often that happens."""
        return self.mirror.transact("fail a lost trial", lambda c: self._lose(number, reason, c))

    def _lose(self, number: int, reason: str, connection: sqlalchemy.Connection) -> Lost | None:
        trial = self.mirror.get_trial(number)
        if trial.state.is_finished():
            return None
        own = reason.startswith("worker lost")
        deaths = int(trial.user_attrs.get(DEATHS_ATTR, 0)) + own
        retry = deaths <= self.ledger.max_retries
        if own and trial.user_attrs.get(LOST_ATTR) == reason:
            # Its worker died the same way under its last attempt too: the trial kills it
            # (os._exit, a segfault), and another attempt would only pay start-up again.
            retry = False
            reason += " (the same way as its previous attempt: not retried again)"
        self.mirror.set_trial_user_attr(number, REASON_ATTR, reason)
        if retry:  # set before the state: a finished trial takes no more attributes
            self.mirror.set_trial_user_attr(number, RETRIED_ATTR, True)
        try:
            if not self.mirror.set_trial_state_values(number, TrialState.FAIL):
                return None
        except optuna.exceptions.UpdateFinishedTrialError:
            return None  # another driver failed it first, and retried it
        end_run(connection, self.ledger.identity.name, self.mirror.get_trial(number))
        if not retry:
            return "failed"
        attempt = int(trial.user_attrs.get(ATTEMPT_ATTR, 1))
        kept = {k: v for k, v in trial.user_attrs.items() if k in (CONFIRMS_ATTR, TRAIN_SEED_ATTR)}
        self.ledger.study.enqueue_trial(
            trial.params,
            user_attrs={
                RETRY_OF_ATTR: int(trial.user_attrs.get(RETRY_OF_ATTR, number)),
                ATTEMPT_ATTR: attempt + 1,
                DEATHS_ATTR: deaths,
                LOST_ATTR: reason,
                **kept,  # a confirmation's retry is the same confirmation
            },
        )
        log.info("trial %d lost (%s); attempt %d enqueued", number, reason, attempt + 1)
        return "retried"

    def sync(self) -> None:
        """Take in other drivers' writes."""
        self.mirror.sync()

    @property
    def shared(self) -> bool:
        """Whether other drivers have created trials in this study while it ran."""
        return self.mirror.foreign_trials > 0

    def stop_requested(self) -> bool:
        """Whether the service asked this study to start no more trials (its job's stop)."""

        def read() -> bool:
            with self.mirror.backend.engine.connect() as connection:
                return stop_requested(connection, self.ledger.identity.name)

        return reconnecting(read, "read the study's stop request", self.mirror.outage)
