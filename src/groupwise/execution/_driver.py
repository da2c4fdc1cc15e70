"""The driver loop: it only decides. Budget, heartbeats, timeouts, dispatch, and what to do
with each worker reply. The ledger (``groupwise.store``) records; the pool (``_pool``) runs.

Failures are data: an exception, a divergence, a timeout or a lost worker ends that trial
with its reason, and the study goes on. Faults of the machinery are retried by the ledger
(``faults.max_retries``): a lost worker, a driver that died (its trials stop getting
heartbeats and are failed as stale by whichever driver sees them first) or one that was
stopped. The budget counts every finished trial except such superseded attempts, so a resumed
study ends with exactly its budget.
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from groupwise.config import TrialConfig
from groupwise.execution._pool import WorkerPool
from groupwise.execution._proposal import propose
from groupwise.execution._protocol import Lost, Reply, Stopped, Trained
from groupwise.plan import Plan
from groupwise.sampling import Suggester
from groupwise.store import Ending, EpochFacts, Ledger, Opened, Proposal, Settled, Tally

__all__ = ["DRIVER", "Driver", "Progress"]

DRIVER = f"{socket.gethostname()}:{os.getpid()}"  # this process, recorded with each run


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


@dataclass
class _Running:
    opened: Opened
    started: float = field(default_factory=time.perf_counter)


class Driver:
    """Runs one launch of a study until its budget or its time is spent."""

    def __init__(
        self,
        plan: Plan,
        ledger: Ledger,
        pool: WorkerPool,
        on_progress: Callable[[Progress], None] | None = None,
        memory_budget: int | None = None,
    ) -> None:
        self.plan, self.spec = plan, plan.spec
        self.ledger = ledger
        self.pool = pool
        self.on_progress = on_progress or (lambda progress: None)
        self.memory_budget = memory_budget  # bytes a trial may use; None: not checked
        self.started = time.perf_counter()
        self.deadline: float | None = None  # of the time budget, once a worker is ready
        self.running: dict[int, _Running] = {}  # by pool slot
        self.ran = 0  # trials this launch finished

    def progress(self) -> Progress:
        return Progress(
            self.ledger.tally(), self.spec.budget.trials, time.perf_counter() - self.started
        )

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> None:
        target = self.spec.budget.trials
        next_tick = 0.0
        while True:
            if time.perf_counter() >= next_tick:
                self._tick()
                next_tick = time.perf_counter() + self.spec.faults.heartbeat_s
            self._check_timeouts()
            if self.pool.free() and self.ledger.shared:
                self.ledger.sync()  # a shared study: see the others' trials before starting one
            while self.pool.free() and self._may_start(target):
                self._start_trial()
            self.on_progress(self.progress())
            if not self.running and self._done(target):
                return
            wake = min(next_tick, self._next_timeout(), self.deadline or math.inf)
            reply = self.pool.wait(wake - time.perf_counter())
            if reply is not None:
                self._handle(*reply)

    def _may_start(self, target: int | None) -> bool:
        """Within the time budget, which starts when the first worker is ready (start-up is
        not the study's to spend), and below the trial budget, counting trials running
        anywhere (ours, another driver's, a dead driver's not yet found stale) as started:
        a resumed study must not overshoot its budget."""
        if self.deadline is None:
            time_s = self.spec.budget.time_s
            self.deadline = time.perf_counter() + time_s if time_s else math.inf
        counts = self.ledger.tally()
        below = target is None or counts.finished + counts.running < target
        return below and time.perf_counter() < self.deadline

    def _done(self, target: int | None) -> bool:
        if self.deadline is not None and time.perf_counter() >= self.deadline:
            return True
        return target is not None and self.ledger.tally().finished >= target

    def _tick(self) -> None:
        """Once per heartbeat: mark our trials alive, take in other drivers' writes, and fail
        (and retry) trials whose driver has stopped beating."""
        ours = {run.opened.number for run in self.running.values()}
        self.ledger.heartbeat(ours)
        self.ledger.sync()
        for number in self.ledger.stale():
            if number not in ours and self.ledger.lose(
                number,
                f"stale: no heartbeat from its driver for over "
                f"{self.spec.faults.stale_after_s} s (the driver died or was cut off)",
            ):
                self.ran += 1

    def _next_timeout(self) -> float:
        limit = self.spec.faults.trial_timeout_s
        if limit is None or not self.running:
            return math.inf
        return min(run.started for run in self.running.values()) + limit

    def _check_timeouts(self) -> None:
        limit = self.spec.faults.trial_timeout_s
        now = time.perf_counter()
        for slot, run in list(self.running.items()):
            if limit is not None and now - run.started >= limit:
                self.pool.replace(slot)  # stop it mid-epoch
                reason = (
                    f"timeout: still training after {now - run.started:.1f} s "
                    f"(faults.trial_timeout_s is {limit:g})"
                )
                self._close(slot, "FAIL", reason=reason)

    # -- starting a trial ---------------------------------------------------------------------
    def _start_trial(self) -> None:
        opened = self.ledger.open_trial(self._propose)
        if isinstance(opened, Settled):  # replayed or refused: already recorded
            self.ran += 1
            return
        slot = self.pool.free()[0]
        self.pool.submit(slot, dict(opened.config))
        self.running[slot] = _Running(opened)

    def _propose(self, trial: Suggester) -> Proposal:
        return propose(trial, self.spec.space, self.plan.facts, self.memory_budget)

    # -- what a reply means -------------------------------------------------------------------
    def _handle(self, slot: int, reply: Reply) -> None:
        if slot not in self.running:
            return  # a reply from a trial already closed (timed out as it answered)
        if isinstance(reply, Lost):
            if self.ledger.lose(self.running[slot].opened.number, reply.reason):
                self.ran += 1
            del self.running[slot]
        elif isinstance(reply, Stopped):
            if reply.kind == "out_of_memory":
                self._close(slot, "PRUNED", reason=reply.reason, over=1.0)
            else:
                self._close(slot, "FAIL", reason=reply.reason, remember=reply.kind == "diverged")
        else:
            self._trained(slot, reply)

    def _trained(self, slot: int, reply: Trained) -> None:
        run, report = self.running[slot], reply.report
        metric = self.spec.objective.metric
        value = report.metrics[metric]
        if not math.isfinite(value):
            reason = f"diverged: {metric} is {value} at epoch {report.epoch}"
            self._close(slot, "FAIL", reason=reason, remember=True)
            return
        facts = EpochFacts(
            report.epoch, value, report.train_loss, report.metrics, report.lrs, report.elapsed_s
        )
        where = self._where(run) | {"peak_memory_bytes": reply.peak_memory_bytes}
        last = report.epoch >= self.spec.training.epochs
        if self.ledger.record_epoch(
            run.opened, facts, last=last, where=where | reply.where.record()
        ):
            self.ran += 1  # it ended (complete or pruned) in the same transaction
            del self.running[slot]
        else:
            self.pool.submit(slot, None)

    @staticmethod
    def _where(run: _Running) -> dict[str, Any]:
        return {"wall_s": round(time.perf_counter() - run.started, 3), "driver": DRIVER}

    def _close(
        self, slot: int, state: Ending, where: dict[str, Any] | None = None, **how: Any
    ) -> None:
        """End the trial on ``slot`` in the ledger, then forget it (in that order: a trial
        whose ending did not reach the database is still ours to fail when we stop)."""
        run = self.running[slot]
        where = self._where(run) | (where or {})
        if self.ledger.close(run.opened.number, state, where=where, **how):
            self.ran += 1
        del self.running[slot]

    def stop(self, reason: str) -> None:
        """Record trials still running as lost (with ``reason``, so they are retried when the
        study is launched again)."""
        for slot, run in list(self.running.items()):
            if self.ledger.lose(run.opened.number, reason):
                self.ran += 1
            del self.running[slot]

    def best_config(self) -> TrialConfig | None:
        best = self.ledger.tally().best_trial
        config = None if best is None else self.ledger.config_of(best)
        return None if config is None else TrialConfig.from_json(config)
