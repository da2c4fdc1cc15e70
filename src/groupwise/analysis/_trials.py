"""A study's trials one page at a time, each classified as the one count classifies it
(:func:`groupwise.store.classify`), for the service's ``GET /studies/{name}/trials``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, get_args

from groupwise.errors import ConfigError
from groupwise.store import (
    CONFIG_ATTR,
    CONFIRMS_ATTR,
    REASON_ATTR,
    TRAIN_SEED_ATTR,
    Source,
    TrialClass,
    classify,
    open_study,
    voided_of,
)

__all__ = ["TrialPage", "best_document", "trial_page"]

STATES: tuple[str, ...] = get_args(TrialClass)


@dataclass(frozen=True)
class TrialPage:
    total: int  # trials matching the filter, on every page
    offset: int
    trials: tuple[dict[str, Any], ...]


def trial_page(
    study: str,
    storage: Source = None,
    *,
    state: str | None = None,
    offset: int = 0,
    limit: int = 100,
) -> TrialPage:
    """Trials by number from ``offset``, at most ``limit``; ``state`` keeps one class."""
    if state is not None and state not in STATES:
        raise ConfigError(f"state: {state!r} is not a trial state; use one of {', '.join(STATES)}")
    loaded = open_study(study, storage)
    voided = voided_of(loaded.user_attrs)
    trials = loaded.get_trials(deepcopy=False)
    kept = [t for t in trials if state is None or classify(t, voided) == state]
    page = kept[offset : offset + limit]
    return TrialPage(len(kept), offset, tuple(_plain(t, voided) for t in page))


def _plain(trial: Any, voided: frozenset[int]) -> dict[str, Any]:
    config = trial.user_attrs.get(CONFIG_ATTR)
    return {
        "number": trial.number,
        "state": classify(trial, voided),
        "value": trial.value,
        "reason": trial.user_attrs.get(REASON_ATTR),
        "confirms": trial.user_attrs.get(CONFIRMS_ATTR),  # a confirmation: of which trial
        "train_seed": trial.user_attrs.get(TRAIN_SEED_ATTR),
        "config": json.loads(config) if isinstance(config, str) else None,
        "started": trial.datetime_start.isoformat() if trial.datetime_start else None,
        "completed": trial.datetime_complete.isoformat() if trial.datetime_complete else None,
    }


def best_document(rows: Sequence[Any], top: int, note: str | None = None) -> dict[str, Any]:
    """What `groupwise best --format json` prints: the best trial, and when more than one
    was asked for, all of them under ``top``; ``note``: that the leaders are within each
    other's noise (``noise_note``)."""
    document: dict[str, Any] = rows[0].to_dict()
    if top > 1:
        document["top"] = [r.to_dict() for r in rows[:top]]
    if note:
        document["note"] = note
    return document
