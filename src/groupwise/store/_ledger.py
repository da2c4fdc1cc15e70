"""The ledger: a trial's life in the study database, each step one transaction.

    open ─┬─> epoch ─> ... ─> close (COMPLETE, PRUNED, or FAIL with its reason)
          ├─> settled at once: a replay of a config already trained, or refused (out of memory)
          └─> lose: failed by the machinery, and enqueued again within ``max_retries``

Every step writes Optuna's trial and groupwise's rows (runs, epochs, groups) in one
transaction, so the database never holds one without the other. Execution speaks to the
ledger by trial number and never sees Optuna. A trial's number is its id in the mirror
(:class:`WriteThroughStorage` holds one study).

The ledger also remembers what trained: a later trial whose config trains identically
(the same canonical key) replays that outcome instead of training again. Outcomes the
machinery caused (a lost worker, a timeout) are not replayed: they say nothing of the config.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import optuna
import sqlalchemy
from optuna.trial import TrialState

from groupwise.errors import StudyError
from groupwise.store import _internals
from groupwise.store._attrs import (
    ATTEMPT_ATTR,
    CANONICAL_ATTR,
    CONFIG_ATTR,
    DUPLICATE_ATTR,
    FINGERPRINT_ATTR,
    IDENTITY_ATTR,
    LOST_ATTR,
    METRIC_ATTR,
    REASON_ATTR,
    RECIPE_ATTR,
    RETRIED_ATTR,
    RETRY_OF_ATTR,
    RUN_ATTR,
    SEEDED_ATTR,
    SPACE_ATTR,
    TASK_ATTR,
)
from groupwise.store._counts import Tally, tally
from groupwise.store._jobs import stop_requested
from groupwise.store._migrate import migrate
from groupwise.store._mirror import WriteThroughStorage
from groupwise.store._open import (
    begin,
    check_exists,
    mask,
    open_storage,
    reconnecting,
    study_names,
)
from groupwise.store._records import GroupRecord, add_epoch, end_run, forget_runs, start_run

__all__ = [
    "Ending",
    "EpochFacts",
    "Ledger",
    "Opened",
    "Proposal",
    "Refusal",
    "Settled",
    "StudyIdentity",
]

log = logging.getLogger("groupwise")

Ending = Literal["COMPLETE", "PRUNED", "FAIL"]
_STATES: dict[str, TrialState] = {
    "COMPLETE": TrialState.COMPLETE,
    "PRUNED": TrialState.PRUNED,
    "FAIL": TrialState.FAIL,
}


@dataclass(frozen=True)
class StudyIdentity:
    """What makes a launch the same study as the one in the database."""

    name: str
    direction: Literal["minimize", "maximize"]
    fingerprint: str  # task, space, objective, training, seed
    metric: str
    task: str
    search_space: str
    record: Mapping[str, Any]  # what the fingerprint hashes (JSON), to say what changed


@dataclass(frozen=True)
class Refusal:
    """A trial not started because it cannot fit: PRUNED with a violated ``memory``
    constraint, ``over`` (the fraction it is over) so the sampler learns where not to go."""

    reason: str
    over: float


@dataclass(frozen=True)
class Proposal:
    """What the caller made of a new trial's suggestions."""

    config: Mapping[str, Any]  # the TrialConfig as plain data
    config_json: str
    canonical: str  # equal for configs that train identically
    scheme: str
    groups: Sequence[GroupRecord]
    refusal: Refusal | None = None


@dataclass(frozen=True)
class Opened:
    """A trial to train."""

    number: int
    run_id: int
    config: Mapping[str, Any]


@dataclass(frozen=True)
class Settled:
    """A trial recorded without training: a replay of trial ``replay_of``, or refused."""

    number: int
    state: Ending
    replay_of: int | None = None


@dataclass(frozen=True)
class EpochFacts:
    """One trained epoch, as the ledger records it."""

    epoch: int
    value: float  # the study's objective metric
    train_loss: float
    metrics: Mapping[str, float]
    lrs: Mapping[str, float]
    elapsed_s: float


@dataclass(frozen=True)
class _Outcome:
    state: TrialState
    value: float | None
    intermediate: Mapping[int, float]
    reason: str
    number: int
    constraints: Mapping[str, float]


class Ledger:
    """One study's trials as a driver writes them. Build it with :meth:`open`."""

    def __init__(
        self,
        study: optuna.Study,
        mirror: WriteThroughStorage,
        identity: StudyIdentity,
        max_retries: int,
        driver: str,
    ) -> None:
        self.study = study
        self.mirror = mirror
        self.identity = identity
        self.max_retries = max_retries
        self.driver = driver  # host:pid, recorded with each run
        self._outcomes: dict[str, _Outcome] = {}
        self._tally: tuple[int, Tally] | None = None
        self._round_sees: frozenset[int] | None = None  # set by begin_round (reproducible)
        for trial in mirror.get_all_trials(self._study_id, deepcopy=False):
            if trial.state.is_finished():
                self._remember(trial)

    # -- opening the study ----------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        url: str,
        identity: StudyIdentity,
        *,
        sampler: Callable[[int], optuna.samplers.BaseSampler],
        pruner: optuna.pruners.BasePruner,
        heartbeat: tuple[int, int],
        max_retries: int,
        driver: str,
        patience_s: float = 120.0,
    ) -> Ledger:
        """Create the study (or open it, checking it is the same study), migrate groupwise's
        tables, and mirror it in memory; the sampler reads the mirror. ``sampler`` makes the
        sampler given how many trials the study already holds, so that a relaunch continues
        the search instead of replaying its first proposals."""
        storage = open_storage(url, create=True, heartbeat=heartbeat)
        migrate(storage.engine)  # groupwise's own tables, beside Optuna's
        _create(storage, identity)
        mirror = WriteThroughStorage(storage, identity.name, patience_s)
        if FINGERPRINT_ATTR not in mirror.get_study_user_attrs(
            mirror.get_study_id_from_name(identity.name)
        ):
            # A study Optuna's own tools made, perhaps after deleting one of this name: the
            # rows that one left behind are not its own (groupwise's are cleared in _create).
            mirror.transact("clear a deleted study's rows", lambda c: forget_runs(c, identity.name))
        existing = len(mirror.get_all_trials(mirror.get_study_id_from_name(identity.name)))
        study = optuna.load_study(
            study_name=identity.name, storage=mirror, sampler=sampler(existing), pruner=pruner
        )
        _check_identity(study, identity, url)
        return cls(study, mirror, identity, max_retries, driver)

    @staticmethod
    def check(url: str, identity: StudyIdentity) -> Tally | None:
        """Read-only, before anything starts: the study's counts if it exists (None if not),
        after checking it is this study. Nothing is created or written."""
        try:
            storage = open_storage(url, create=False)
        except StudyError:
            if url.startswith("sqlite:///"):
                return None  # no database file yet: a new study
            raise
        if identity.name not in study_names(storage):
            return None
        study = optuna.load_study(study_name=identity.name, storage=storage)
        _check_identity(study, identity, url, write=False)
        return tally(study.get_trials(deepcopy=False), identity.direction)

    @staticmethod
    def check_source(url: str, identity: StudyIdentity, source: str) -> None:
        """Read-only: refuse to warm-start from ``source`` unless it is a study of the same
        task, search space, objective and training in this database (its seed and budget may
        differ), so its values mean what this study's will."""
        storage = open_storage(url, create=False)
        check_exists(source, study_names(storage), url)
        record = optuna.load_study(study_name=source, storage=storage).user_attrs.get(IDENTITY_ATTR)
        if not isinstance(record, dict):
            raise StudyError(
                f"warm_start.studies: study {source!r} was launched by an older groupwise that "
                "did not record its search space; launch it again with this version, or drop it"
            )
        ours = {k: v for k, v in identity.record.items() if k != "seed"}
        theirs = {k: v for k, v in record.items() if k != "seed"}
        changed = _differences(theirs, ours)
        if changed:
            raise StudyError(
                f"warm_start.studies: study {source!r} differs from this one in "
                f"{'; '.join(changed)} ({source!r} -> this file); warm-starting needs the same "
                "task, search space, objective and training"
            )

    def enqueue(self, seeds: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        """Recipes first: each ``(name, params)`` waits to be the next trial asked for
        (once: a relaunch does not enqueue what the study already holds)."""
        for name, params in seeds:
            self.study.enqueue_trial(
                dict(params), user_attrs={RECIPE_ATTR: name}, skip_if_exists=True
            )

    def enqueue_following(
        self, seeds: Sequence[tuple[str, Mapping[str, Any], Sequence[str]]]
    ) -> None:
        """Recipes that follow the best trial: each ``(name, params, follows)`` takes the
        parameters named in ``follows`` from the best complete trial so far (keeps its own
        where nothing has completed) and waits to be the next trial asked for. Once: a
        recipe the study already holds is not enqueued again."""
        best = self.tally().best_trial
        taken = {} if best is None else self.mirror.get_trial(best).params
        held = self._recipes()
        self.enqueue(
            [
                (name, {**params, **{k: taken[k] for k in follows if k in taken}})
                for name, params, follows in seeds
                if name not in held
            ]
        )

    def recipes_pending(self) -> bool:
        """Whether a recipe's trial still waits or runs (what follows it waits for it)."""
        return bool(self._recipes((TrialState.WAITING, TrialState.RUNNING)))

    def _recipes(self, states: tuple[TrialState, ...] | None = None) -> set[str]:
        """The recipes the study's trials (in ``states``; None: all) were enqueued from."""
        trials = self.mirror.get_all_trials(self._study_id, deepcopy=False, states=states)
        return {str(t.user_attrs[RECIPE_ATTR]) for t in trials if RECIPE_ATTR in t.user_attrs}

    def seed_from(self, source: str) -> int:
        """Copy ``source``'s finished trials (complete and pruned, as trained) into this study,
        once, for the sampler to learn from; they count neither toward the budget nor as the
        best. Returns how many were copied now."""
        taken = {t.user_attrs.get(SEEDED_ATTR) for t in self.mirror.get_all_trials(self._study_id)}
        storage = open_storage(self.mirror.backend.url, create=False)
        copies = [
            t
            for t in optuna.load_study(study_name=source, storage=storage).get_trials()
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
            and f"{source}#{t.number}" not in taken
            and SEEDED_ATTR not in t.user_attrs
        ]
        self.mirror.transact("copy an earlier study's trials", lambda c: self._copy(source, copies))
        return len(copies)

    def _copy(self, source: str, trials: Sequence[optuna.trial.FrozenTrial]) -> None:
        kept = (CONFIG_ATTR, CANONICAL_ATTR, REASON_ATTR)
        for t in trials:
            copy = optuna.trial.create_trial(
                state=t.state,
                value=t.value if t.state == TrialState.COMPLETE else None,
                params=t.params,
                distributions=t.distributions,
                user_attrs={k: v for k, v in t.user_attrs.items() if k in kept}
                | {SEEDED_ATTR: f"{source}#{t.number}"},
                intermediate_values=dict(t.intermediate_values),
            )
            self.study.add_trial(copy)
            self._remember(self.mirror.get_all_trials(self._study_id, deepcopy=False)[-1])

    def use_sampler(self, sampler: optuna.samplers.BaseSampler) -> None:
        """Sample from here on with ``sampler`` (another driver joined: reseed)."""
        self.study.sampler = sampler

    def adopt_running(self, stale_reason: str) -> list[int]:
        """The RUNNING trials found at open. Those whose heartbeat is already stale (their
        driver died) are failed and retried at once, with ``stale_reason``; those that never had
        a heartbeat (a crash before the first one, an older groupwise) get one, so they go stale
        in their turn instead of being waited for forever; a live driver's are left alone.
        Returns the numbers failed."""
        stale = self.mirror.stale_trials()
        failed = [number for number in stale if self.lose(number, stale_reason)]
        beating = self.mirror.beating()
        for trial in self.mirror.get_all_trials(
            self._study_id, deepcopy=False, states=(TrialState.RUNNING,)
        ):
            if trial.number not in beating and trial.number not in stale:
                self.mirror.record_heartbeat(trial.number)
        return failed

    # -- a trial's life ---------------------------------------------------------------------
    def open_trial(self, propose: Callable[[optuna.Trial], Proposal]) -> Opened | Settled:
        """Ask for a trial, let ``propose`` sample it, and record it, in one transaction:
        to train (:class:`Opened`), or settled at once as a replay or a refusal."""
        return self.mirror.transact("start a trial", lambda c: self._open(propose, c))

    def _open(
        self, propose: Callable[[optuna.Trial], Proposal], connection: sqlalchemy.Connection
    ) -> Opened | Settled:
        trial = self.study.ask()
        proposal = propose(trial)
        trial.set_user_attr(CONFIG_ATTR, proposal.config_json)
        trial.set_user_attr(CANONICAL_ATTR, proposal.canonical)
        trial_id = trial.number  # the mirror's id; the stored number once written
        attrs = self.mirror.get_trial(trial_id).user_attrs
        outcome = self._outcomes.get(proposal.canonical)
        settled: Ending | None = None
        if outcome is not None:
            settled = self._replay(trial_id, outcome)
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
            scheme=proposal.scheme,
            config=proposal.config,
            groups=proposal.groups,
            driver=self.driver,
            duplicate_of=outcome.number if outcome else None,
        )
        if settled is None:
            return Opened(number, run_id, proposal.config)
        frozen = self.mirror.get_trial(trial_id)
        end_run(
            connection,
            self.identity.name,
            number,
            state=settled,
            value=frozen.value,
            reason=str(frozen.user_attrs.get(REASON_ATTR, "")),
        )
        return Settled(number, settled, outcome.number if outcome else None)

    def _replay(self, trial_id: int, outcome: _Outcome) -> Ending:
        """The same training already ran: record its outcome instead of training again."""
        self.mirror.set_trial_user_attr(trial_id, DUPLICATE_ATTR, outcome.number)
        for name, value in outcome.constraints.items():
            self.mirror.set_trial_system_attr(trial_id, _internals.constraint_key(name), value)
        for step, value in sorted(outcome.intermediate.items()):
            self.mirror.set_trial_intermediate_value(trial_id, step, value)
        if outcome.reason:
            self.mirror.set_trial_user_attr(trial_id, REASON_ATTR, outcome.reason)
        final = outcome.value if outcome.state == TrialState.COMPLETE else None
        self.study.tell(trial_id, final, state=outcome.state, skip_if_finished=True)
        return outcome.state.name  # type: ignore[return-value]  # a finished state

    def _refuse(self, trial_id: int, refusal: Refusal) -> Ending:
        self.mirror.set_trial_system_attr(
            trial_id, _internals.constraint_key("memory"), max(refusal.over, 1e-6)
        )
        self.mirror.set_trial_user_attr(trial_id, REASON_ATTR, refusal.reason)
        self.study.tell(trial_id, None, state=TrialState.PRUNED, skip_if_finished=True)
        return "PRUNED"

    def record_epoch(
        self, opened: Opened, epoch: EpochFacts, *, last: bool, where: Mapping[str, Any]
    ) -> Ending | None:
        """Record an epoch (its objective as Optuna's intermediate value, and its epoch row)
        and, in the same transaction, end the trial when this was its ``last`` epoch
        (COMPLETE) or the pruner says so (PRUNED). None: it goes on."""

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
            elif self.should_prune(opened.number):
                ending = "PRUNED"
            else:
                return None
            value = epoch.value if ending == "COMPLETE" else None
            frozen = self._end(opened.number, _STATES[ending], connection, value, "", where, None)
            if frozen is not None:
                self._remember(frozen)
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
        where: Mapping[str, Any] | None = None,
        over: float | None = None,
        remember: bool | None = None,
    ) -> bool:
        """End a trial: Optuna's tell and the run row's end. ``over``: it ran out of memory
        (a violated ``memory`` constraint). ``remember``: whether a later identical config
        replays this outcome (default: unless it failed). False when it had already ended
        (another driver failed it as stale while this one was cut off)."""
        frozen = self.mirror.transact(
            "end a trial",
            lambda c: self._end(number, _STATES[state], c, value, reason, where, over),
        )
        if frozen is None:
            return False
        if (state != "FAIL") if remember is None else remember:
            self._remember(frozen)
        return True

    def _end(
        self,
        number: int,
        state: TrialState,
        connection: sqlalchemy.Connection,
        value: float | None,
        reason: str,
        where: Mapping[str, Any] | None,
        over: float | None,
    ) -> optuna.trial.FrozenTrial | None:
        if self.mirror.get_trial(number).state.is_finished():
            return None
        if over is not None:
            key = _internals.constraint_key("memory")
            self.mirror.set_trial_system_attr(number, key, max(over, 1e-6))
        if reason:
            self.mirror.set_trial_user_attr(number, REASON_ATTR, reason)
        if where is not None:
            self.mirror.set_trial_user_attr(number, RUN_ATTR, dict(where))
        frozen = self.study.tell(number, value, state=state, skip_if_finished=True)
        end_run(
            connection,
            self.identity.name,
            frozen.number,
            state=state.name,
            value=frozen.value,
            reason=reason,
            where=where,
        )
        return frozen

    def lose(self, number: int, reason: str) -> bool:
        """Fail a trial the machinery lost and, within ``max_retries``, enqueue its
        parameters again, in one transaction. Whoever fails it first (this driver or
        another) retries it. False when it had already ended."""
        return self.mirror.transact("fail a lost trial", lambda c: self._lose(number, reason, c))

    def _lose(self, number: int, reason: str, connection: sqlalchemy.Connection) -> bool:
        trial = self.mirror.get_trial(number)
        if trial.state.is_finished():
            return False
        attempt = int(trial.user_attrs.get(ATTEMPT_ATTR, 1))
        retry = attempt <= self.max_retries
        if reason.startswith("worker lost") and trial.user_attrs.get(LOST_ATTR) == reason:
            # Its worker died the same way under its last attempt too: the trial kills it
            # (os._exit, a segfault), and another attempt would only pay start-up again.
            retry = False
            reason += " (the same way as its previous attempt: not retried again)"
        self.mirror.set_trial_user_attr(number, REASON_ATTR, reason)
        if retry:  # set before the state: a finished trial takes no more attributes
            self.mirror.set_trial_user_attr(number, RETRIED_ATTR, True)
        try:
            if not self.mirror.set_trial_state_values(number, TrialState.FAIL):
                return False
        except optuna.exceptions.UpdateFinishedTrialError:
            return False  # another driver failed it first, and retried it
        end_run(connection, self.identity.name, number, state="FAIL", reason=reason)
        if retry:
            first = int(trial.user_attrs.get(RETRY_OF_ATTR, number))
            self.study.enqueue_trial(
                trial.params,
                user_attrs={RETRY_OF_ATTR: first, ATTEMPT_ATTR: attempt + 1, LOST_ATTR: reason},
            )
            log.info("trial %d lost (%s); retry %d enqueued", number, reason, attempt)
        return True

    def _remember(self, trial: optuna.trial.FrozenTrial) -> None:
        """Keep a finished trial's outcome for replay, when its config trained to it."""
        key = trial.user_attrs.get(CANONICAL_ATTR)
        if key is None or key in self._outcomes:
            return
        reason = str(trial.user_attrs.get(REASON_ATTR, ""))
        if trial.state == TrialState.FAIL and not reason.startswith("diverged"):
            return
        self._outcomes[key] = _Outcome(
            trial.state,
            trial.value,
            dict(trial.intermediate_values),
            reason,
            trial.number,
            dict(trial.constraints),
        )

    # -- other drivers, heartbeats --------------------------------------------------------------
    def heartbeat(self, numbers: Iterable[int]) -> None:
        for number in numbers:
            self.mirror.record_heartbeat(number)

    def sync(self) -> None:
        """Take in other drivers' writes."""
        self.mirror.sync()

    def stop_requested(self) -> bool:
        """Whether the service asked this study to start no more trials (its job's stop)."""

        def read() -> bool:
            with self.mirror.backend.engine.connect() as connection:
                return stop_requested(connection, self.identity.name)

        return reconnecting(read, "read the study's stop request", self.mirror.outage)

    @property
    def shared(self) -> bool:
        """Whether other drivers have created trials in this study while it ran."""
        return self.mirror.foreign_trials > 0

    def stale(self) -> list[int]:
        """Numbers of RUNNING trials whose driver stopped beating."""
        return self.mirror.stale_trials()

    # -- reading --------------------------------------------------------------------------------
    def tally(self) -> Tally:
        """The study's counts and best trial (:func:`~groupwise.store.tally`), from memory."""
        if self._tally is None or self._tally[0] != self.mirror.version:
            trials = self.mirror.get_all_trials(self._study_id, deepcopy=False)
            self._tally = (self.mirror.version, tally(trials, self.identity.direction))
        return self._tally[1]

    def config_of(self, number: int) -> str | None:
        """A trial's config as JSON (None if groupwise did not sample it)."""
        config = self.mirror.get_trial(number).user_attrs.get(CONFIG_ATTR)
        return None if config is None else str(config)

    @property
    def _study_id(self) -> int:
        return self.mirror.get_study_id_from_name(self.identity.name)


def _create(storage: optuna.storages.RDBStorage, identity: StudyIdentity) -> None:
    """Create the study unless it exists, in the transaction that first deletes, on SQLite,
    Optuna's rows whose study or trial is gone (SQLite reuses ids, so the new study would
    adopt them): no other driver's trial can slip in between. The same transaction clears
    groupwise's rows of the name (a deleted namesake's) and stamps this identity, so a driver
    opening the study from another file finds it stamped and is refused: there is no moment
    at which two drivers can both see a new study unclaimed and both claim it."""
    with (
        storage.engine.connect() as connection,
        begin(connection),
        _internals.sessions_on(storage, connection),
    ):
        if identity.name in study_names(storage):
            return
        if connection.dialect.name == "sqlite":
            _internals.purge_orphans(connection)  # before the new study takes the old id
        direction = optuna.study.StudyDirection[identity.direction.upper()]
        try:
            study_id = storage.create_new_study([direction], identity.name)
        except optuna.exceptions.DuplicatedStudyError:
            return  # another driver created it first (PostgreSQL: no lock held up to here)
        forget_runs(connection, identity.name)
        for key, value in _stamp(identity).items():
            storage.set_study_user_attr(study_id, key, value)


def _stamp(identity: StudyIdentity) -> dict[str, Any]:
    """The study attributes that make a study this identity's."""
    return {
        FINGERPRINT_ATTR: identity.fingerprint,
        IDENTITY_ATTR: dict(identity.record),
        TASK_ATTR: identity.task,
        METRIC_ATTR: identity.metric,
        SPACE_ATTR: identity.search_space,
    }


def _check_identity(
    study: optuna.Study, identity: StudyIdentity, url: str, write: bool = True
) -> None:
    """A new study takes this identity (when ``write``); an existing one must have it, and
    a mismatch names the fields that differ."""
    known = study.user_attrs.get(FINGERPRINT_ATTR)
    if known is None and write:  # a study Optuna's own tools made (groupwise's are stamped)
        for key, value in _stamp(identity).items():
            study.set_user_attr(key, value)
    elif known is not None and known != identity.fingerprint:
        before = study.user_attrs.get(IDENTITY_ATTR)
        changed = _differences(before, identity.record) if isinstance(before, dict) else []
        what = (
            f"these fields (stored -> this file): {'; '.join(changed)}"
            if changed
            else "its task, search space, objective, training or seed"
        )
        raise StudyError(
            f"study {identity.name!r} in {mask(url)} was launched from a study file that differs "
            f"in {what}; give this study file a new name, or launch the original again"
        )
    direction = study.direction.name.lower()
    if direction != identity.direction:
        raise StudyError(
            f"study {identity.name!r} exists with direction {direction}; the study file asks "
            f"for {identity.direction}"
        )


def _differences(before: Any, after: Any, path: str = "", limit: int = 6) -> list[str]:
    """``path: old -> new`` for each leaf that differs between two JSON trees (at most
    ``limit``, then how many more)."""
    found: list[str] = []

    def walk(a: Any, b: Any, where: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b), key=str):
                walk(
                    a.get(key, "(absent)"),
                    b.get(key, "(absent)"),
                    f"{where}.{key}" if where else str(key),
                )
        elif a != b:
            found.append(f"{where}: {json.dumps(a)[:60]} -> {json.dumps(b)[:60]}")

    walk(before, after, path)
    more = f"; (+{len(found) - limit} more)" if len(found) > limit else ""
    return found[:limit] + ([more.lstrip("; ")] if more else [])
