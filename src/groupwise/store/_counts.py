"""The one count of a study's trials. The progress bar, ``groupwise status``, ``compare`` and
the report all call :func:`tally`, so they agree by construction.

Each trial is in exactly one class:

- ``complete``, ``pruned``, ``failed``: finished, and counted toward the budget;
- ``retried``: failed by the machinery (worker lost, driver died or was stopped) and enqueued
  again; its retry is what counts, so this attempt does not;
- ``replayed``: a config the study had already trained (the same training, whatever the
  scheme), recorded with that trial's outcome and not trained again; budget is for new
  configs, so it does not count;
- ``seeded``: a finished trial copied from an earlier study (``warm_start.studies``) for the
  sampler to learn from; not this study's work, so it neither counts nor can be the best;
- ``voided``: a failed trial of a launch whose first trials all failed alike, which stopped
  it: the task was broken, not the configs, so the user's budget is not spent on them (the
  study's ``groupwise.voided`` attribute lists them, with why);
- ``running``, ``waiting``: not finished (``waiting``: enqueued, not yet started).

The best trial is the COMPLETE one (not a replay) with the best finite value; of equal values
the earliest. Once a study has confirmed its leaders (``confirm:``, ``_confirm``), it is the
confirmed leader instead, and the best value its mean over its fresh seeds: confirmations are
trials like any (counted in their class, and in ``confirmations`` beside), never a best of
their own.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import optuna
from optuna.trial import TrialState

from groupwise.store._attrs import (
    CONFIRMS_ATTR,
    DUPLICATE_ATTR,
    RETRIED_ATTR,
    SEEDED_ATTR,
    VOIDED_ATTR,
)
from groupwise.store._confirm import confirmed

__all__ = ["Tally", "TrialClass", "classify", "tally", "voided_of"]

TrialClass = Literal[
    "complete",
    "pruned",
    "failed",
    "retried",
    "replayed",
    "seeded",
    "voided",
    "running",
    "waiting",
]
CLASSES: tuple[TrialClass, ...] = (
    "complete",
    "pruned",
    "failed",
    "retried",
    "replayed",
    "seeded",
    "voided",
    "running",
    "waiting",
)


@dataclass(frozen=True)
class Tally:
    complete: int = 0
    pruned: int = 0
    failed: int = 0  # counted toward the budget
    retried: int = 0  # failed attempts whose parameters were enqueued again: not counted
    replayed: int = 0  # configs already trained, their outcome reused: not counted
    seeded: int = 0  # copied from an earlier study for the sampler: not counted
    voided: int = 0  # a broken task's first failures, which stopped a launch: not counted
    running: int = 0
    waiting: int = 0
    best_value: float | None = None
    best_trial: int | None = None
    # confirmation trials (of ``complete``, ``pruned``, ``failed``, ``running`` above): counted
    # toward the budget like any trial
    confirmations: int = 0
    best_spread: float | None = None  # the standard deviation over its fresh seeds (2+)
    best_seeds: int = 0  # the fresh seeds best_value is the mean of (0: one trial's value)

    @property
    def finished(self) -> int:
        """What the budget counts: complete + pruned + failed."""
        return self.complete + self.pruned + self.failed


def voided_of(study_attrs: Mapping[str, Any]) -> frozenset[int]:
    """The trials a study's ``groupwise.voided`` attribute lists (none: an empty set)."""
    voided = study_attrs.get(VOIDED_ATTR)
    return frozenset(int(n) for n in voided) if isinstance(voided, dict) else frozenset()


def classify(trial: optuna.trial.FrozenTrial, voided: frozenset[int] = frozenset()) -> TrialClass:
    """``voided``: the study's voided trials (:func:`voided_of`)."""
    if SEEDED_ATTR in trial.user_attrs:
        return "seeded"
    if trial.number in voided and trial.state == TrialState.FAIL:
        return "voided"
    if trial.state.is_finished() and DUPLICATE_ATTR in trial.user_attrs:
        return "replayed"
    if trial.state == TrialState.FAIL:
        return "retried" if trial.user_attrs.get(RETRIED_ATTR) else "failed"
    if trial.state == TrialState.COMPLETE:
        return "complete"
    if trial.state == TrialState.PRUNED:
        return "pruned"
    return "waiting" if trial.state == TrialState.WAITING else "running"


def tally(
    trials: Iterable[optuna.trial.FrozenTrial],
    direction: str,
    voided: frozenset[int] = frozenset(),
) -> Tally:
    """Counts by :func:`classify` and the best trial (``direction``: minimize or maximize;
    ``voided``: the study's voided trials)."""
    counts = dict.fromkeys(CLASSES, 0)
    sign = 1.0 if direction == "minimize" else -1.0
    best: tuple[float, int] | None = None
    confirmations = 0
    listed = list(trials)
    for trial in listed:
        kind = classify(trial, voided)
        counts[kind] += 1
        if CONFIRMS_ATTR in trial.user_attrs:
            confirmations += kind in ("complete", "pruned", "failed", "running")
            continue
        value = trial.value if kind == "complete" else None
        if value is None or not math.isfinite(value):
            continue
        if best is None or (sign * value, trial.number) < (sign * best[0], best[1]):
            best = (value, trial.number)
    leaders = confirmed(listed, direction) if confirmations else []
    leader = leaders[0] if leaders and leaders[0].mean is not None else None
    if leader is not None:
        best = (leader.mean or 0.0, leader.trial)
    return Tally(
        **counts,
        best_value=best[0] if best else None,
        best_trial=best[1] if best else None,
        confirmations=confirmations,
        best_spread=None if leader is None else leader.spread,
        best_seeds=0 if leader is None else len(leader.values),
    )
