"""The ledger: a trial's life in the study database, each step one transaction.

    open ─┬─> epoch ─> ... ─> close (COMPLETE, PRUNED, or FAIL with its reason)
          ├─> settled at once: a replay of a config already trained, or refused (out of memory)
          └─> lose: failed by the machinery, and enqueued again within ``max_retries``

Every step writes Optuna's trial and groupwise's rows (runs, epochs, groups) in one
transaction, so the database never holds one without the other. Execution speaks to the
ledger by trial number and never sees Optuna: the sampler and pruner are built here from the
plan's records, and sampling gets a new trial's suggestions from the ledger (a
:class:`~groupwise.sampling.Suggester`, not the trial). A trial's number is its id in the
mirror (:class:`WriteThroughStorage` holds one study).

Beside the lifecycle, a ledger holds its study's other jobs, each in its module: the identity
it was opened with (``_identity``), what trained (``_replays``), warm starts
(``ledger.warm_start``), liveness (``ledger.liveness``: heartbeats, other drivers, stale
trials) and the confirmation of the leaders (``ledger.confirmations``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any

import optuna
import sqlalchemy
from optuna.trial import TrialState

from groupwise.store import _internals
from groupwise.store._attrs import (
    ATTEMPT_ATTR,
    CANONICAL_ATTR,
    CONFIG_ATTR,
    CONFIRMS_ATTR,
    DUPLICATE_ATTR,
    FINGERPRINT_ATTR,
    REASON_ATTR,
    RETRY_OF_ATTR,
    RUN_ATTR,
    TRAIN_SEED_ATTR,
    VOIDED_ATTR,
)
from groupwise.store._confirm import Confirmations
from groupwise.store._counts import Tally, tally, voided_of
from groupwise.store._identity import StudyIdentity, claim, create
from groupwise.store._liveness import Liveness
from groupwise.store._migrate import migrate
from groupwise.store._mirror import WriteThroughStorage
from groupwise.store._open import open_storage
from groupwise.store._records import RunFacts, add_epoch, end_run, forget_runs, start_run
from groupwise.store._replays import Replays
from groupwise.store._suggestions import Suggestions
from groupwise.store._trial import (
    Buildable,
    Deferred,
    Ending,
    EpochFacts,
    Opened,
    Proposal,
    Refusal,
    Settled,
)
from groupwise.store._warmstart import WarmStart

__all__ = ["Ledger"]

log = logging.getLogger("groupwise")

# How many times a trial is proposed again when its config turns out to be another trial's
# (drivers sharing a study); the last proposal trains, whatever it is (a popped queued trial
# would otherwise be proposed again and again).
CLAIM_TRIES = 4


class _ClaimedError(Exception):
    """The proposal's config is another trial's: the transaction is undone."""

    def __init__(self, queued: bool, running: int | None) -> None:
        super().__init__("claimed")
        self.queued = queued  # the proposal was a queued trial's (it stays queued)
        self.running = running  # the trial of the same training running now, if one is


_STATES: dict[str, TrialState] = {
    "COMPLETE": TrialState.COMPLETE,
    "PRUNED": TrialState.PRUNED,
    "FAIL": TrialState.FAIL,
}


class Ledger:
    """One study's trials as a driver writes them. Build it with :meth:`open`."""

    def __init__(
        self,
        study: optuna.Study,
        mirror: WriteThroughStorage,
        identity: StudyIdentity,
        sampler: Buildable,
        max_retries: int,
        driver: str,
    ) -> None:
        self.study = study
        self.mirror = mirror
        self.identity = identity
        self.sampler = sampler
        self.max_retries = max_retries
        self.driver = driver  # host:pid, recorded with each run
        self.replays = Replays()
        self._tally: tuple[int, Tally] | None = None
        self._round_sees: frozenset[int] | None = None  # set by begin_round (reproducible)
        for trial in mirror.get_all_trials(self._study_id, deepcopy=False):
            if trial.state.is_finished():
                self.replays.remember(trial)
        self.liveness = Liveness(self)
        self.warm_start = WarmStart(self)
        self.confirmations = Confirmations(self)

    @classmethod
    def open(
        cls,
        url: str,
        identity: StudyIdentity,
        *,
        sampler: Buildable,
        pruner: Buildable,
        heartbeat: tuple[int, int],
        max_retries: int,
        driver: str,
        patience_s: float = 120.0,
    ) -> Ledger:
        """Create the study (or open it, checking it is the same study), migrate groupwise's
        tables, and mirror it in memory; the sampler reads the mirror. A relaunch samples from
        a seed of its own (salted with how many trials the study holds), so it continues the
        search instead of replaying its first proposals."""
        storage = open_storage(url, create=True, heartbeat=heartbeat)
        migrate(storage.engine)  # groupwise's own tables, beside Optuna's
        create(storage, identity)
        mirror = WriteThroughStorage(storage, identity.name, patience_s)
        study_id = mirror.get_study_id_from_name(identity.name)
        if FINGERPRINT_ATTR not in mirror.get_study_user_attrs(study_id):
            # A study Optuna's own tools made, perhaps after deleting one of this name: the
            # rows that one left behind are not its own (groupwise's are cleared in create).
            mirror.transact("clear a deleted study's rows", lambda c: forget_runs(c, identity.name))
        existing = len(mirror.get_all_trials(study_id))
        study = optuna.load_study(
            study_name=identity.name,
            storage=mirror,
            sampler=sampler.reseeded(*([existing] if existing else [])).build(),
            pruner=pruner.build(),
        )
        claim(study, identity, url)
        return cls(study, mirror, identity, sampler, max_retries, driver)

    def reseed(self, *salt: object) -> None:
        """Sample from here on from a seed salted with ``salt`` (another driver joined: one
        seed for all would propose the same configs)."""
        self.study.sampler = self.sampler.reseeded(*salt).build()

    # -- a trial's life ---------------------------------------------------------------------
    def open_trial(self, propose: Callable[[Suggestions], Proposal]) -> Opened | Settled | Deferred:
        """Ask for a trial, let ``propose`` sample it from its suggestions, and record it, in
        one transaction: to train (:class:`Opened`), or settled at once as a replay or a
        refusal.

        A config is trained once, however many drivers share the study: the transaction
        holds the study (one driver opens a trial at a time) and looks in the database for
        another trial of the same training, one this driver's mirror may not have seen yet.
        Found, the transaction is undone. A queued config (a recipe, a retry) stays queued
        until that trial has ended, then replays it (:class:`Deferred`: start nothing now); a
        sampled one is proposed again by the sampler, reseeded (it was following another
        driver's draws), or, found finished, replayed."""
        for tries_left in reversed(range(CLAIM_TRIES)):
            body = functools.partial(self._open, propose, claim=tries_left > 0)
            try:
                return self.mirror.transact("start a trial", body)
            except _ClaimedError as claimed:
                self._catch_up()
                if claimed.queued and claimed.running is not None:
                    return Deferred(claimed.running)
        raise AssertionError("unreachable: the last try does not claim")

    def _catch_up(self) -> None:
        """After a proposal another trial had claimed: take in the study as the database
        holds it (its finished trials become replays) and sample from a seed of our own."""
        trials = self.mirror.get_all_trials(self._study_id, deepcopy=False)  # rebuilt memory
        for trial in trials:
            if trial.state.is_finished():
                self.replays.remember(trial)
        self.reseed(self.driver, len(trials))

    def _open(
        self,
        propose: Callable[[Suggestions], Proposal],
        connection: sqlalchemy.Connection,
        *,
        claim: bool,
    ) -> Opened | Settled:
        _internals.lock_study(connection, self.mirror.backend_study)
        trial = self.study.ask()
        proposal = propose(Suggestions(trial))
        trial_id = trial.number  # the mirror's id; the stored number once written
        canonical = _canonical(proposal, self.mirror.get_trial(trial_id).user_attrs)
        trial.set_user_attr(CONFIG_ATTR, proposal.config_json)
        trial.set_user_attr(CANONICAL_ATTR, canonical)
        trial_frozen = self.mirror.get_trial(trial_id)
        attrs = trial_frozen.user_attrs
        outcome = self.replays.get(canonical)
        if outcome is None and claim:
            _check_claims(self.mirror, connection, canonical, trial_id, trial_frozen)
        settled: TrialState | None = None
        if outcome is not None:
            settled = self.replays.replay(self.study, self.mirror, trial_id, outcome)
        elif proposal.refusal is not None:
            settled = self._refuse(trial_id, proposal.refusal)
        self.mirror.write_pending()  # the whole trial, in one session
        number = self.mirror.stored_number(trial_id)
        run_id = start_run(
            connection,
            study=self.identity.name,
            trial_number=number,
            attempt=int(attrs.get(ATTEMPT_ATTR, 1)),
            retry_of=attrs.get(RETRY_OF_ATTR),
            groups=proposal.groups,
            driver=self.driver,
            duplicate_of=outcome.number if outcome else None,
        )
        if settled is None:
            # a confirmation's fresh seed and the trial it confirms (ints, as JSON keeps them)
            seed, confirms = attrs.get(TRAIN_SEED_ATTR), attrs.get(CONFIRMS_ATTR)
            return Opened(number, run_id, proposal.config, seed, confirms)
        frozen = self.mirror.get_trial(trial_id)
        end_run(connection, self.identity.name, frozen)
        state: Ending = settled.name  # type: ignore[assignment]  # a finished state
        return Settled(number, state, outcome.number if outcome else None)

    def _refuse(self, trial_id: int, refusal: Refusal) -> TrialState:
        self.mirror.set_trial_system_attr(
            trial_id, _internals.constraint_key("memory"), max(refusal.over, 1e-6)
        )
        self.mirror.set_trial_user_attr(trial_id, REASON_ATTR, refusal.reason)
        self.study.tell(trial_id, None, state=TrialState.PRUNED, skip_if_finished=True)
        return TrialState.PRUNED

    def record_epoch(
        self,
        opened: Opened,
        epoch: EpochFacts,
        *,
        last: bool,
        facts: RunFacts,
        value: float | None = None,
    ) -> Ending | None:
        """Record an epoch (its objective as Optuna's intermediate value, and its epoch row)
        and, in the same transaction, end the trial when this was its ``last`` epoch
        (COMPLETE, with ``value``: the objective's reduce over its epochs; default this
        epoch's) or the pruner says so (PRUNED), with ``facts`` of its run. A confirmation is
        never pruned: its mean needs every seed to the end. None: it goes on."""

        def record(connection: sqlalchemy.Connection) -> Ending | None:
            self.mirror.set_trial_intermediate_value(opened.number, epoch.epoch, epoch.value)
            add_epoch(
                connection,
                opened.run_id,
                epoch=epoch.epoch,
                train_loss=epoch.train_loss,
                metrics=epoch.metrics,
                metric=self.identity.metric,
                lrs=epoch.lrs,
                elapsed_s=epoch.elapsed_s,
            )
            if last:
                ending: Ending = "COMPLETE"
            elif opened.confirms is None and self.should_prune(opened.number):
                ending = "PRUNED"
            else:
                return None
            told = (epoch.value if value is None else value) if ending == "COMPLETE" else None
            frozen = self._end(opened.number, _STATES[ending], connection, told, "", facts, None)
            if frozen is not None:
                self.replays.remember(frozen)
            return ending

        return self.mirror.transact("record an epoch", record)

    def begin_round(self) -> None:
        """Reproducible dispatch starts a round of trials: until the next round, the pruner
        sees only the trials finished now (and the one it judges), not a round-mate that
        happened to finish first, so whether a trial is pruned never depends on timing."""
        finished = self.mirror.get_all_trials(self._study_id, deepcopy=False)
        self._round_sees = frozenset(t.number for t in finished if t.state.is_finished())

    def should_prune(self, number: int) -> bool:
        trial = self.mirror.get_trial(number)
        if self._round_sees is None:
            return bool(self.study.pruner.prune(self.study, trial))
        with self.mirror.seeing_only(self._round_sees | {number}):
            return bool(self.study.pruner.prune(self.study, trial))

    def close(
        self,
        number: int,
        state: Ending,
        *,
        value: float | None = None,
        reason: str = "",
        facts: RunFacts | None = None,
        over: float | None = None,
        remember: bool | None = None,
    ) -> bool:
        """End a trial: Optuna's tell and the run row's end. ``over``: it ran out of memory
        (a violated ``memory`` constraint). ``remember``: whether a later identical config
        replays this outcome (default: unless it failed). False when it had already ended
        (another driver failed it as stale while this one was cut off)."""
        frozen = self.mirror.transact(
            "end a trial",
            lambda c: self._end(number, _STATES[state], c, value, reason, facts, over),
        )
        if frozen is None:
            return False
        if (state != "FAIL") if remember is None else remember:
            self.replays.remember(frozen)
        return True

    def _end(
        self,
        number: int,
        state: TrialState,
        connection: sqlalchemy.Connection,
        value: float | None,
        reason: str,
        facts: RunFacts | None,
        over: float | None,
    ) -> optuna.trial.FrozenTrial | None:
        if self.mirror.get_trial(number).state.is_finished():
            return None
        if over is not None:
            key = _internals.constraint_key("memory")
            self.mirror.set_trial_system_attr(number, key, max(over, 1e-6))
        if reason:
            self.mirror.set_trial_user_attr(number, REASON_ATTR, reason)
        if facts is not None:
            self.mirror.set_trial_user_attr(number, RUN_ATTR, facts.attribute())
        frozen = self.study.tell(number, value, state=state, skip_if_finished=True)
        end_run(connection, self.identity.name, frozen, facts)
        return frozen

    # -- reading --------------------------------------------------------------------------------
    def tally(self) -> Tally:
        """The study's counts and best trial (:func:`~groupwise.store.tally`), from memory."""
        if self._tally is None or self._tally[0] != self.mirror.version:
            trials = self.mirror.get_all_trials(self._study_id, deepcopy=False)
            voided = voided_of(self.mirror.get_study_user_attrs(self._study_id))
            self._tally = (self.mirror.version, tally(trials, self.identity.direction, voided))
        return self._tally[1]

    def voided(self) -> frozenset[int]:
        """The trials a broken task's launch voided (:meth:`void`)."""
        return voided_of(self.mirror.get_study_user_attrs(self._study_id))

    def void(self, numbers: list[int], reason: str) -> None:
        """Take failed trials out of the budget: a broken task's, not the search's."""
        study_id = self._study_id
        held = dict(self.mirror.get_study_user_attrs(study_id).get(VOIDED_ATTR) or {})
        held |= {str(n): reason for n in numbers}
        self.mirror.set_study_user_attr(study_id, VOIDED_ATTR, held)

    def config_of(self, number: int) -> str | None:
        """A trial's config as JSON (None if groupwise did not sample it)."""
        config = self.mirror.get_trial(number).user_attrs.get(CONFIG_ATTR)
        return None if config is None else str(config)

    @property
    def _study_id(self) -> int:
        return self.mirror.get_study_id_from_name(self.identity.name)


def _check_claims(
    mirror: WriteThroughStorage,
    connection: sqlalchemy.Connection,
    canonical: str,
    trial_id: int,
    trial: optuna.trial.FrozenTrial,
) -> None:
    """Raise :class:`_ClaimedError` (undoing the transaction) when another trial of the
    same training is in the database, running or finished with an outcome a replay may
    copy (a lost or failed trial says nothing of the config). A queued trial this one was
    popped from is in the database already: it is not another."""
    found = _internals.trials_with_user_attr(
        connection,
        mirror.backend_study,
        CANONICAL_ATTR,
        canonical,
        DUPLICATE_ATTR,
        besides=mirror.backend_id(trial_id),
    )
    running = [n for n, state in found if state == TrialState.RUNNING]
    if running or any(s in (TrialState.COMPLETE, TrialState.PRUNED) for _, s in found):
        queued = _internals.enqueued(trial)
        raise _ClaimedError(queued, running[0] if running else None)


def _canonical(proposal: Proposal, attrs: Mapping[str, Any]) -> str:
    """The key of a trial's training: its config's, and a confirmation's fresh seed (another
    training of the config: neither replays the other)."""
    seed = attrs.get(TRAIN_SEED_ATTR)
    return proposal.canonical if seed is None else f"{proposal.canonical}#seed={seed}"
