"""Warm starts: what a study tries before its sampler proposes anything of its own.

Recipes (known-good configs adapted to the model, as sampler parameters) wait in Optuna's
queue to be the next trials asked for, once each: a relaunch does not enqueue what the study
already holds. Recipes that follow the best trial take some of its parameters when they join
the queue. Earlier studies of the same task are copied in, finished trials only, for the
sampler to learn from; they count neither toward the budget nor as the best.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import optuna
import sqlalchemy
from optuna.trial import TrialState

from groupwise.store import _internals
from groupwise.store._attrs import (
    BATCH_OF_ATTR,
    CANONICAL_ATTR,
    CONFIG_ATTR,
    REASON_ATTR,
    RECIPE_ATTR,
    SEEDED_ATTR,
)
from groupwise.store._open import open_storage

if TYPE_CHECKING:
    from groupwise.store._ledger import Ledger

__all__ = ["WarmStart"]


class WarmStart:
    """The recipes and earlier studies one ledger's study starts from."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.mirror = ledger.mirror

    def enqueue(self, seeds: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        """Recipes first: each ``(name, params)`` waits to be the next trial asked for, once:
        neither a relaunch nor a second driver starting beside this one enqueues what the
        study already holds (the check and the enqueue hold the study, in one transaction)."""
        if seeds:
            self.mirror.transact("enqueue the recipes", lambda c: self._enqueue(c, seeds))

    def _enqueue(
        self, connection: sqlalchemy.Connection, seeds: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> None:
        _internals.lock_study(connection, self.mirror.backend_study)
        self.mirror.sync()  # what another driver enqueued before we held the study
        for name, params in seeds:
            self.ledger.study.enqueue_trial(
                dict(params), user_attrs={RECIPE_ATTR: name}, skip_if_exists=True
            )

    def enqueue_following(
        self, seeds: Sequence[tuple[str, Mapping[str, Any], Sequence[str]]]
    ) -> None:
        """Recipes that follow the best trial: each ``(name, params, follows)`` takes the
        parameters named in ``follows`` from the best complete trial so far (keeps its own
        where nothing has completed) and waits to be the next trial asked for. Once: a
        recipe the study already holds is not enqueued again."""
        best = self.ledger.tally().best_trial
        taken = {} if best is None else self.mirror.get_trial(best).params
        held = self._recipes()
        self.enqueue(
            [
                (name, {**params, **{k: taken[k] for k in follows if k in taken}})
                for name, params, follows in seeds
                if name not in held
            ]
        )

    def enqueue_companions(self, number: int, count: int) -> int:
        """``workers.batch``: ``count`` trials that keep trial ``number``'s structure (its
        categorical and integer parameters: scheme, its options, each group's optimizer)
        and leave its numbers (lrs, weight decays, ...) to the sampler, next in the queue,
        so that one worker's batch trains them together. Only a sampled trial leads a batch
        (not a recipe, a retry or a confirmation). Returns how many were enqueued."""
        if count < 1:
            return 0
        return self.mirror.transact("enqueue a batch", lambda c: self._companions(c, number, count))

    def _companions(self, connection: sqlalchemy.Connection, number: int, count: int) -> int:
        _internals.lock_study(connection, self.mirror.backend_study)
        trial = self.mirror.get_trial(number)
        if _internals.enqueued(trial):
            return 0
        fixed = {
            name: trial.params[name]
            for name, distribution in trial.distributions.items()
            if not isinstance(distribution, optuna.distributions.FloatDistribution)
        }
        for _ in range(count):
            self.ledger.study.enqueue_trial(
                fixed, user_attrs={BATCH_OF_ATTR: number}, skip_if_exists=False
            )
        return count

    def recipes_pending(self) -> bool:
        """Whether a recipe's trial still waits or runs (what follows it waits for it)."""
        return bool(self._recipes((TrialState.WAITING, TrialState.RUNNING)))

    def _recipes(self, states: tuple[TrialState, ...] | None = None) -> set[str]:
        """The recipes the study's trials (in ``states``; None: all) were enqueued from."""
        trials = self.mirror.get_all_trials(self.mirror.study_id, deepcopy=False, states=states)
        return {str(t.user_attrs[RECIPE_ATTR]) for t in trials if RECIPE_ATTR in t.user_attrs}

    def seed_from(self, source: str) -> int:
        """Copy ``source``'s finished trials (complete and pruned, as trained) into this study,
        once, for the sampler to learn from; they count neither toward the budget nor as the
        best. Returns how many were copied now."""
        held = self.mirror.get_all_trials(self.mirror.study_id)
        taken = {t.user_attrs.get(SEEDED_ATTR) for t in held}
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
            self.ledger.study.add_trial(copy)
            trials_now = self.mirror.get_all_trials(self.mirror.study_id, deepcopy=False)
            self.ledger.replays.remember(trials_now[-1])
