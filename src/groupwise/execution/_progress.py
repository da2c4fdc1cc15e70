"""Where a launch stands, as its progress bar and its result show it."""

from __future__ import annotations

from dataclasses import dataclass

from groupwise.store import Tally

__all__ = ["Progress"]


@dataclass(frozen=True)
class Progress:
    """Where a launch stands: the study's counts (:func:`groupwise.store.tally`), its target
    and the time since the launch began."""

    counts: Tally
    target: int | None
    elapsed_s: float

    @property
    def finished(self) -> int:
        return self.counts.finished

    @property
    def complete(self) -> int:
        return self.counts.complete

    @property
    def pruned(self) -> int:
        return self.counts.pruned

    @property
    def failed(self) -> int:
        return self.counts.failed

    @property
    def retried(self) -> int:
        return self.counts.retried

    @property
    def running(self) -> int:
        return self.counts.running

    @property
    def best(self) -> float | None:
        return self.counts.best_value

    @property
    def best_trial(self) -> int | None:
        return self.counts.best_trial
