"""The driver loop: it only decides. Heartbeats, timeouts, dispatch, and what to do
with each worker reply. The ledger (``groupwise.store``) records; the pool (``_pool``) runs.

Failures are data: an exception, a divergence, a timeout or a lost worker ends that trial
with its reason, and the study goes on. Faults of the machinery are retried by the ledger
(``faults.max_retries``): a lost worker, a driver that died (its trials stop getting
heartbeats and are failed as stale by whichever driver sees them first) or one that was
stopped. The budget counts every finished trial except such superseded attempts, so a resumed
study ends with exactly its budget. With ``confirm:``, the budget's last ``top x seeds``
trials are the leaders' confirmations, which start once the search has ended
(``_confirming``). The budget's rules are ``_budget``'s.
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from groupwise import _interrupts as interrupts
from groupwise.config import TrialConfig
from groupwise.errors import StudyError
from groupwise.execution._budget import Budget
from groupwise.execution._confirming import Confirming
from groupwise.execution._progress import Progress
from groupwise.execution._proposal import propose
from groupwise.execution._protocol import Finished, Lost, Pool, Reply, Stopped, Trained
from groupwise.plan import Plan
from groupwise.sampling import Suggester
from groupwise.store import (
    Deferred,
    Ending,
    EpochFacts,
    Ledger,
    Opened,
    Proposal,
    RunFacts,
    Settled,
)

__all__ = ["DRIVER", "STOPPED", "Driver", "Progress"]

DRIVER = f"{socket.gethostname()}:{os.getpid()}"  # this process, recorded with each run
# A launch whose first trials all fail for one reason stops: the rest would too.
FIRST_FAILURES = 5
# This many proposals in a row that repeat configs the study has run: nothing new is left.
REPEATS_IN_A_ROW = 25
STOPPED = "stopped on request: no new trials started; the running ones finished"


@dataclass
class _Running:
    opened: Opened
    started: float = field(default_factory=time.perf_counter)
    values: list[float] = field(default_factory=list)  # the objective, epoch by epoch
    last: Trained | None = None  # its worker's last epoch: where it ran, its peak memory


class Driver:
    """Runs one launch of a study until its budget or its time is spent."""

    def __init__(
        self,
        plan: Plan,
        ledger: Ledger,
        pool: Pool,
        on_progress: Callable[[Progress], None] | None = None,
        memory_budget: int | None = None,
    ) -> None:
        self.plan, self.spec = plan, plan.spec
        self.ledger = ledger
        self.pool = pool
        self.on_progress = on_progress or (lambda progress: None)
        self.memory_budget = memory_budget  # bytes a trial may use; None: not checked
        self.started = time.perf_counter()
        self.running: dict[int, _Running] = {}  # by pool slot
        # trials this launch trained to an end that counts toward the budget: not replays of a
        # finished config, not attempts lost and retried, not another driver's stale trials
        self.ran = 0
        self.note = ""  # why the launch stopped, when not its budget
        self.repeats = 0  # proposals in a row that repeated a finished config
        # (trial, state, reason) of the trials this launch ended, in order
        self.endings: list[tuple[int, str, str]] = []
        self.reseeded = False
        self.deferred = False  # the queue's next trial waits for one running: start none now
        self.followers = [seed for seed in plan.seeds if seed.follows]  # not yet queued
        self.confirming = Confirming(self.spec.confirming, ledger, self.spec.seed)
        self.budget = Budget(self.spec, ledger, self.confirming)

    def progress(self) -> Progress:
        return Progress(
            self.ledger.tally(), self.spec.budget.trials, time.perf_counter() - self.started
        )

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> None:
        self.budget.adopt(_stale_reason(self.spec.faults.stale_after_s))
        next_tick = 0.0
        while True:
            interrupts.check()  # a safe point: nothing half-written
            if time.perf_counter() >= next_tick:
                self._tick()
                next_tick = time.perf_counter() + self.spec.faults.heartbeat_s
            self._check_timeouts()
            if self.pool.free() and self.ledger.liveness.shared:
                self._share()
            if self._round_may_start():
                self._follow()
                if self.spec.workers.reproducible and self._startable():
                    self.ledger.begin_round()  # once per round, not once per idle pass
                while self._startable():
                    self._start_trial()
                self._confirm()
            self.on_progress(self.progress())
            if not self.running and self.budget.ended(self.note, self.note == STOPPED):
                return
            wake = min(next_tick, self._next_timeout(), self.budget.deadline or math.inf)
            with interrupts.interruptible():
                reply = self.pool.wait(wake - time.perf_counter())
            if reply is not None:
                self._handle(*reply)

    def _share(self) -> None:
        """A shared study: see the other drivers' trials before starting one, and sample from
        a seed of this driver's own (one seed for all would propose the same configs)."""
        self.ledger.liveness.sync()
        if not self.reseeded:
            self.ledger.reseed(DRIVER, len(self.endings))
            self.reseeded = True

    def _follow(self) -> None:
        """Queue the recipes that follow the best trial (their base lr is its) once the
        recipes before them have all finished; in reproducible rounds that is at a round's
        start, so which lr they take never depends on timing."""
        warm = self.ledger.warm_start
        if self.followers and not warm.recipes_pending():
            warm.enqueue_following([(s.recipe, s.params, s.follows) for s in self.followers])
            self.followers = []

    def _startable(self) -> bool:
        """Whether a trial may start now: a free worker, budget left, no stop said, and the
        queue not waiting on a running trial's outcome."""
        if self.deferred or not self.pool.free():
            return False
        return self.budget.may_start() and not self.note

    def _round_may_start(self) -> bool:
        """Reproducible dispatch starts trials in rounds: only when the last round has
        finished and every worker is ready, so each round sees the same history whatever
        the timing. Otherwise a free worker is enough."""
        if not self.spec.workers.reproducible:
            return True
        return not self.running and len(self.pool.free()) == self.pool.capacity

    def _confirm(self) -> None:
        """Once the search has ended and none of its trials runs: enqueue the leaders' fresh
        seeds, then start them while workers are free (past the time budget: it bounds the
        search). Not after a stop request: the next launch runs them."""
        confirming = self.confirming
        if not confirming.on or self.note == STOPPED:
            return
        if not confirming.enqueued:
            if self.running or not (self.budget.searched_all() or self.note):
                return
            confirming.enqueue()
        while self.pool.free() and not self.deferred and confirming.waiting():
            self._start_trial()

    def _tick(self) -> None:
        """Once per heartbeat: mark our trials alive, take in other drivers' writes, fail
        (and retry) trials whose driver has stopped beating, and heed a stop request (the
        service's: no new trials; the running ones finish and are recorded)."""
        self.deferred = False  # another driver's trial may have ended meanwhile
        ours = {run.opened.number for run in self.running.values()}
        live = self.ledger.liveness
        live.heartbeat(ours)
        live.sync()
        for number in live.stale():
            if number not in ours:  # another driver's: retried, not this launch's to count
                self.ledger.liveness.lose(number, _stale_reason(self.spec.faults.stale_after_s))
        if not self.note and live.stop_requested():
            self.note = STOPPED

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
        if isinstance(opened, Deferred):  # asked again once a trial ends
            self.deferred = True
            return
        if isinstance(opened, Settled):  # replayed or refused: already recorded
            self._settled(opened)
            return
        self.repeats = 0
        slot = self.pool.free()[0]
        self.pool.submit(slot, dict(opened.config), opened.seed)
        self.running[slot] = _Running(opened)
        room = min(self.pool.companions(slot), self.budget.room())
        if room:  # the first trial of a worker's batch: the rest share its structure
            self.ledger.warm_start.enqueue_companions(opened.number, room)

    def _settled(self, settled: Settled) -> None:
        if settled.replay_of is None:  # refused: it would not fit in memory
            self.ran += 1
            self.repeats = 0
            return
        self.repeats += 1  # a config the study has run: its outcome reused, no budget spent
        if self.repeats >= REPEATS_IN_A_ROW:
            self.note = (
                f"stopped early: the last {self.repeats} proposals all repeated configs this "
                "study has already run, so the search space has nothing new left to try; "
                "widen it (more schemes, optimizers or ranges) to search further"
            )

    def _propose(self, trial: Suggester) -> Proposal:
        clip = self.spec.training.grad_clip_norm  # the study's, for every trial: in the config
        return propose(trial, self.spec.space, self.plan.facts, self.memory_budget, clip)

    # -- what a reply means -------------------------------------------------------------------
    def _handle(self, slot: int, reply: Reply) -> None:
        self.deferred = False  # a trial may have ended: what waited for it may start
        if slot not in self.running:
            return  # a reply from a trial already closed (timed out as it answered)
        if isinstance(reply, Lost):
            if (
                self.ledger.liveness.lose(self.running[slot].opened.number, reply.reason)
                == "failed"
            ):
                self.ran += 1  # its worker died under it too often: it counts, as failed
            self._forget(slot)
        elif isinstance(reply, Stopped):
            if reply.kind == "out_of_memory":
                self._close(slot, "PRUNED", reason=reply.reason, over=1.0)
            else:
                self._close(slot, "FAIL", reason=reply.reason, remember=reply.kind == "diverged")
        elif isinstance(reply, Finished):
            self._finished(slot, reply)
        else:
            self._trained(slot, reply)

    def _trained(self, slot: int, reply: Trained) -> None:
        run, report = self.running[slot], reply.report
        metric = self.spec.objective.metric
        run.last = reply
        value = report.metrics.get(metric)
        if value is None:  # a function task's report: the built-in loop reports every metric
            reason = (
                f"task.train {self.spec.task.name!r} reported [{', '.join(report.metrics)}] at "
                f"step {report.epoch}, without objective.metric {metric!r}"
            )
            self._close(slot, "FAIL", reason=reason)
            return
        if not math.isfinite(value):
            reason = f"diverged: {metric} is {value} at epoch {report.epoch}"
            self._close(slot, "FAIL", reason=reason, remember=True)
            return
        epoch = EpochFacts(
            report.epoch, value, report.train_loss, report.metrics, report.lrs, report.elapsed_s
        )
        run.values.append(value)
        # a function task's last report is known when its function returns (Finished)
        last = not self.spec.task.function and report.epoch >= self.spec.training.epochs
        ending = self.ledger.record_epoch(
            run.opened,
            epoch,
            last=last,
            facts=_facts(run, reply),
            value=self.spec.objective.value_of(run.values) if last else None,
        )
        if ending is None:
            self.pool.submit(slot, None)
            return
        self.ran += 1  # it ended (complete or pruned) in the same transaction
        self.endings.append((run.opened.number, ending, ""))
        self._forget(slot)

    def _finished(self, slot: int, reply: Finished) -> None:
        """A function task's function returned: complete, with the value it returned or the
        objective's reduce over what it reported."""
        run, ref = self.running[slot], self.spec.task.name
        if reply.value is not None and not math.isfinite(reply.value):
            reason = f"diverged: task.train {ref!r} returned {reply.value}"
            self._close(slot, "FAIL", reason=reason, remember=True)
        elif reply.value is None and not run.values:
            metric = self.spec.objective.metric
            reason = (
                f"task.train {ref!r} returned without a value and without reporting "
                f"{metric}: call trial.report(epoch, {metric}=...) or return the value"
            )
            self._close(slot, "FAIL", reason=reason)
        else:
            value = reply.value
            if value is None:
                value = self.spec.objective.value_of(run.values)
            self._close(slot, "COMPLETE", value=value)

    def _close(self, slot: int, state: Ending, **how: Any) -> None:
        """End the trial on ``slot`` in the ledger, then forget it (in that order: a trial
        whose ending did not reach the database is still ours to fail when we stop)."""
        run = self.running[slot]
        if self.ledger.close(run.opened.number, state, facts=_facts(run, run.last), **how):
            self.ran += 1
            self.endings.append((run.opened.number, state, str(how.get("reason", ""))))
        self._forget(slot)
        self._check_first_failures()

    def _forget(self, slot: int) -> None:
        """The trial on ``slot`` has ended or been lost: its slot is the pool's again."""
        del self.running[slot]
        self.pool.release(slot)

    def _check_first_failures(self) -> None:
        """Stop when this launch's first trials all failed for one reason: the task is broken,
        and the rest of the budget would fail the same way. Those failures say nothing of
        their configs, so they are voided: they stay recorded, but spend none of the budget."""
        first = self.endings[:FIRST_FAILURES]
        ends = {(state, reason) for _, state, reason in first}
        if len(first) == FIRST_FAILURES and len(ends) == 1 and first[0][1] == "FAIL":
            reason = first[0][2]
            self.ledger.void([number for number, _, _ in first], f"a broken task: {reason}")
            self.ran -= FIRST_FAILURES
            raise StudyError(
                f"the first {FIRST_FAILURES} trials of this launch all failed with the same "
                f"reason, so the study stopped: {reason}; fix that, then launch again (the "
                "failed trials stay recorded, as voided: they do not count toward the budget)"
            )

    def stop(self, reason: str) -> None:
        """Record trials still running as lost (with ``reason``, so they are retried when the
        study is launched again)."""
        for slot, run in list(self.running.items()):
            if self.ledger.liveness.lose(run.opened.number, reason) == "failed":
                self.ran += 1
            self._forget(slot)

    def best_config(self) -> TrialConfig | None:
        best = self.ledger.tally().best_trial
        config = None if best is None else self.ledger.config_of(best)
        return None if config is None else TrialConfig.from_json(config)


def _stale_reason(stale_after_s: float) -> str:
    return (
        f"stale: no heartbeat from its driver for over {stale_after_s} s "
        "(the driver died or was cut off)"
    )


def _facts(run: _Running, reply: Trained | None = None) -> RunFacts:
    """The run as this driver saw it, and where its worker trained it (when it said)."""
    wall_s = round(time.perf_counter() - run.started, 3)
    if reply is None:
        return RunFacts(wall_s=wall_s, driver=DRIVER)
    at = reply.placement
    return RunFacts(
        wall_s=wall_s,
        driver=DRIVER,
        host=at.host,
        pid=at.pid,
        node=at.node,
        device=at.device,
        gpu_ids=at.gpu_ids,
        visible_devices=at.visible_devices,
        peak_memory_bytes=reply.peak_memory_bytes,
        training=reply.report.training or None,
    )
