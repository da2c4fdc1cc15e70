"""The confirmation phase of a launch, as the driver decides it (``confirm: {top, seeds}``).

The search runs first, to the trial budget less the confirmations (``top x seeds``), or until
the time budget ends or the space has nothing new left. Once none of its trials runs, the
leaders' fresh seeds are enqueued (``groupwise.store`` says which: each leader's missing seeds,
once), and the driver starts them until none waits: a time budget bounds the search, not the
confirmations, which run after it. A stop request ends the launch without them; the next
launch runs them.
"""

from __future__ import annotations

from dataclasses import dataclass

from groupwise.store import Ledger, Tally
from groupwise.studyfiles import Confirm

__all__ = ["Confirming"]


@dataclass
class Confirming:
    """One launch's confirmation: what it is, and whether this launch has enqueued it."""

    confirm: Confirm | None
    ledger: Ledger
    study_seed: int
    enqueued: bool = False  # this launch has enqueued what the leaders lack

    @property
    def on(self) -> bool:
        return self.confirm is not None

    def search_target(self, target: int) -> int:
        """The trials the search may count: the budget less the confirmations."""
        return target - (self.confirm.trials if self.confirm else 0)

    @staticmethod
    def searched(counts: Tally) -> int:
        """Search trials finished (counted) or running: every counted trial but the
        confirmations."""
        return counts.finished + counts.running - counts.confirmations

    def enqueue(self) -> int:
        """Enqueue the leaders' missing fresh seeds (once per launch); how many."""
        self.enqueued = True
        if self.confirm is None:
            return 0
        return self.ledger.confirmations.enqueue(
            self.confirm.top, self.confirm.seeds, self.study_seed
        )

    def waiting(self) -> bool:
        """Whether a confirmation waits to start."""
        return self.on and self.ledger.confirmations.waiting() > 0
