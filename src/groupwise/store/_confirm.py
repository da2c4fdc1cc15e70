"""Confirmation of a study's leaders: their configs trained again on fresh seeds.

A study's best single trial is the luckiest of many draws of a noisy number: the more a space
can vary, the more ways it has to find a lucky one. After the search (``confirm: {top: K,
seeds: R}``), the K best configs are each trained again with R fresh training seeds
(initialisation and batch order; the data's split stays), each a trial of its own:

- enqueued with the leader's parameters and two attributes, ``groupwise.confirms`` (the search
  trial whose config it trains) and ``groupwise.train_seed``; every leader gets the same R
  seeds, so leaders are compared on the same draws (their difference is measured paired);
- never pruned (a mean needs every seed to its end), never replayed from the leader (its
  training differs by the seed), retried when lost with both attributes, and counted toward
  the budget like any trial;
- enqueued in one transaction holding the study, once per (leader, seed): a relaunch or a
  second driver enqueues only what is missing.

The study's best is then the confirmed config with the best mean over its fresh seeds (the
search trial that made it a leader is shown beside, not averaged in: it was chosen for being
good). A config that failed on a fresh seed (diverged, raised) ranks below every config whose
seeds all completed.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import optuna
import sqlalchemy
from optuna.trial import TrialState

from groupwise.store import _internals
from groupwise.store._attrs import (
    CANONICAL_ATTR,
    CONFIRM_ATTR,
    CONFIRMS_ATTR,
    DUPLICATE_ATTR,
    RETRIED_ATTR,
    SEEDED_ATTR,
    TRAIN_SEED_ATTR,
)

if TYPE_CHECKING:
    from groupwise.store._ledger import Ledger

__all__ = ["Confirmations", "Confirmed", "confirmed", "fresh_seeds", "within_noise"]

# Fresh seeds lie far from any study's own (a study's seed is small), so a confirmation never
# repeats a search trial's draws; the benchmark's fresh-seed evaluations use others again.
_SEED_BASE = 7_919


def fresh_seeds(study_seed: int, count: int) -> tuple[int, ...]:
    """The training seeds of a study's confirmations: the same ``count`` for every leader."""
    return tuple(_SEED_BASE * (r + 1) + study_seed for r in range(count))


@dataclass(frozen=True)
class Confirmed:
    """A leader's config and what its fresh seeds gave."""

    trial: int  # the search trial whose config this is
    search_value: float | None  # that trial's own value (chosen for being good)
    values: tuple[float, ...]  # the completed fresh seeds' values, in seed order
    seeds: tuple[int, ...]  # their training seeds
    failed: int = 0  # fresh seeds that failed (diverged, raised): counted against it
    pending: int = 0  # fresh seeds waiting or running

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def spread(self) -> float | None:
        """The sample standard deviation over the fresh seeds (None below two)."""
        return statistics.stdev(self.values) if len(self.values) > 1 else None


def _is_counted(trial: optuna.trial.FrozenTrial) -> bool:
    """A confirmation that stands: not an attempt lost and retried."""
    return not trial.user_attrs.get(RETRIED_ATTR)


def confirmed(trials: Iterable[optuna.trial.FrozenTrial], direction: str) -> list[Confirmed]:
    """Every confirmed config, the leader first: configs without a failed seed before those
    with one, then by mean over the fresh seeds (better first), then by trial number."""
    by_number = {}
    seeds: dict[int, list[tuple[int, optuna.trial.FrozenTrial]]] = {}
    for trial in trials:
        by_number[trial.number] = trial
        if CONFIRMS_ATTR in trial.user_attrs and _is_counted(trial):
            seed = int(trial.user_attrs.get(TRAIN_SEED_ATTR, 0))
            seeds.setdefault(int(trial.user_attrs[CONFIRMS_ATTR]), []).append((seed, trial))
    out = []
    for number, runs in seeds.items():
        runs.sort(key=lambda run: run[0])
        finite = [
            (s, float(t.value))
            for s, t in runs
            if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value)
        ]
        pending = sum(not t.state.is_finished() for _, t in runs)
        leader = by_number.get(number)
        out.append(
            Confirmed(
                trial=number,
                search_value=None if leader is None else leader.value,
                values=tuple(v for _, v in finite),
                seeds=tuple(s for s, _ in finite),
                failed=len(runs) - len(finite) - pending,  # failed, pruned (memory), not finite
                pending=pending,
            )
        )
    sign = 1.0 if direction == "minimize" else -1.0

    def rank(c: Confirmed) -> tuple[bool, bool, float, int]:
        mean = c.mean
        return (c.failed > 0, mean is None, sign * (mean or 0.0), c.trial)

    return sorted(out, key=rank)


def within_noise(first: Confirmed, second: Confirmed) -> float | None:
    """Whether two confirmed configs are within each other's noise: the standard error of
    their difference over the seeds both completed (paired: the same seeds, so the draws they
    share cancel). Returns that standard error when the difference of their means is within
    twice it, else None (also with fewer than two shared seeds: no error to judge by)."""
    a = dict(zip(first.seeds, first.values, strict=True))
    b = dict(zip(second.seeds, second.values, strict=True))
    shared = sorted(set(a) & set(b))
    if len(shared) < 2:
        return None
    differences = [a[s] - b[s] for s in shared]
    error = statistics.stdev(differences) / math.sqrt(len(shared))
    return error if abs(statistics.fmean(differences)) <= 2 * error else None


class Confirmations:
    """One ledger's confirmations: enqueued after the search, counted as they run."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.mirror = ledger.mirror

    def enqueue(self, top: int, seeds: int, study_seed: int) -> int:
        """Enqueue the fresh seeds the ``top`` configs of the search still lack (``seeds``
        each), in one transaction holding the study; returns how many were enqueued."""
        return int(
            self.mirror.transact(
                "enqueue the confirmations",
                lambda c: self._enqueue(c, top, fresh_seeds(study_seed, seeds)),
            )
        )

    def _enqueue(self, connection: sqlalchemy.Connection, top: int, seeds: Sequence[int]) -> int:
        _internals.lock_study(connection, self.mirror.backend_study)
        self.mirror.sync()  # what another driver enqueued before we held the study
        trials = self.mirror.get_all_trials(self.mirror.study_id, deepcopy=False)
        held = {
            (int(t.user_attrs[CONFIRMS_ATTR]), int(t.user_attrs.get(TRAIN_SEED_ATTR, 0)))
            for t in trials
            if CONFIRMS_ATTR in t.user_attrs
        }
        study = self.ledger.study
        count = 0
        for leader in self.leaders(trials, top):
            for seed in seeds:
                if (leader.number, seed) in held:
                    continue
                study.enqueue_trial(
                    dict(leader.params),
                    user_attrs={CONFIRMS_ATTR: leader.number, TRAIN_SEED_ATTR: seed},
                )
                count += 1
        study.set_user_attr(CONFIRM_ATTR, {"top": top, "seeds": list(seeds)})
        return count

    def leaders(
        self, trials: Sequence[optuna.trial.FrozenTrial], top: int
    ) -> list[optuna.trial.FrozenTrial]:
        """The ``top`` complete search trials by value (the study's own: no copies from an
        earlier study, replays or confirmations)."""
        voided = self.ledger.voided()
        sign = 1.0 if self.ledger.identity.direction == "minimize" else -1.0
        search = [
            t
            for t in trials
            if t.state == TrialState.COMPLETE
            and t.value is not None
            and math.isfinite(t.value)
            and t.number not in voided
            and not {CONFIRMS_ATTR, DUPLICATE_ATTR, SEEDED_ATTR} & set(t.user_attrs)
        ]
        leaders: list[optuna.trial.FrozenTrial] = []
        configs: set[object] = set()  # one trial per config (two drivers may train one twice)
        for trial in sorted(search, key=lambda t: (sign * (t.value or 0.0), t.number)):
            config = trial.user_attrs.get(CANONICAL_ATTR, trial.number)
            if config not in configs and len(leaders) < top:
                configs.add(config)
                leaders.append(trial)
        return leaders

    def waiting(self) -> int:
        """Confirmations enqueued and not yet started."""
        trials = self.mirror.get_all_trials(
            self.mirror.study_id, deepcopy=False, states=(TrialState.WAITING,)
        )
        return sum(CONFIRMS_ATTR in t.user_attrs for t in trials)
