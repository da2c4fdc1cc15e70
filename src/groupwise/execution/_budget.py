"""The budget's rules, as the driver asks them: whether a trial may start, whether the search
has spent its share, whether the launch is over.

The trial budget counts every trial running anywhere (this driver's, another's, a dead
driver's not yet found stale) as started, so a resumed study never overshoots it; with
``confirm:``, the search's share is the budget less the confirmations (``_confirming``). The
time budget starts when the first worker is ready: start-up is not the study's to spend.
Trials a dead driver left running at open are *adopted*: they hold budget until they end or
go stale, and the launch waits for them.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from groupwise.execution._confirming import Confirming
from groupwise.store import Ledger
from groupwise.studyfiles import StudySpec

__all__ = ["Budget"]


@dataclass
class Budget:
    """One launch's budget: the study's trials and time, and the trials it adopted."""

    spec: StudySpec
    ledger: Ledger
    confirming: Confirming
    deadline: float | None = None  # of the time budget, once a worker is ready
    adopted: set[int] = field(default_factory=set)  # a dead driver's trials, until stale

    @property
    def target(self) -> int | None:
        return self.spec.budget.trials

    def adopt(self, stale_reason: str) -> None:
        """Take on the trials left RUNNING that never had a heartbeat (their driver died
        before its first): waited for until they end or go stale."""
        self.adopted = set(self.ledger.liveness.adopt_running(stale_reason))

    def clock(self) -> float:
        """The time budget's end: started on the first call (a worker is ready)."""
        if self.deadline is None:
            time_s = self.spec.budget.time_s
            self.deadline = time.perf_counter() + time_s if time_s else math.inf
        return self.deadline

    def may_start(self) -> bool:
        """Within the time budget and below the search's share of the trial budget."""
        target = self.target
        below = target is None or (
            self.confirming.searched(self.ledger.tally()) < self.confirming.search_target(target)
        )
        return below and time.perf_counter() < self.clock()

    def room(self) -> int:
        """Trials the search may still start (a large number for a budget of time only)."""
        target = self.target
        if target is None:
            return 2**31
        searched = self.confirming.searched(self.ledger.tally())
        return max(0, self.confirming.search_target(target) - searched)

    def searched_all(self) -> bool:
        """The search has spent its budget: its time, or its trials (the budget less the
        confirmations)."""
        if self.deadline is not None and time.perf_counter() >= self.deadline:
            return True
        target = self.target
        return target is not None and (
            self.confirming.searched(self.ledger.tally()) >= self.confirming.search_target(target)
        )

    def ended(self, note: str, stopped: bool) -> bool:
        """With nothing of this launch running: whether it is over (its budget spent and its
        confirmations run, or a ``note`` saying why it stopped; ``stopped``: on request,
        which leaves the confirmations to the next launch)."""
        if self.confirming.on and not stopped:
            searched = self.searched_all() or bool(note)
            return searched and self.confirming.enqueued and not self.confirming.waiting()
        self.adopted = self.ledger.liveness.still_running(self.adopted)  # they hold budget
        return bool(note) or (self.searched_all() and not self.adopted)
