"""What trained: a later trial whose config trains identically (the same canonical key)
replays that outcome instead of training again.

Outcomes the machinery caused (a lost worker, a timeout, an interrupt) are not remembered:
they say nothing of the config. A divergence is: the same config diverges again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from groupwise.store import _internals
from groupwise.store._attrs import CANONICAL_ATTR, DUPLICATE_ATTR, REASON_ATTR
from groupwise.store._mirror import WriteThroughStorage

__all__ = ["Outcome", "Replays"]


@dataclass(frozen=True)
class Outcome:
    """A finished trial's outcome, as a replay copies it."""

    state: TrialState
    value: float | None
    intermediate: Mapping[int, float]
    reason: str
    number: int
    constraints: Mapping[str, float]


class Replays:
    """The outcome of each config that trained, by canonical key."""

    def __init__(self) -> None:
        self._outcomes: dict[str, Outcome] = {}

    def get(self, canonical: str) -> Outcome | None:
        return self._outcomes.get(canonical)

    def remember(self, trial: optuna.trial.FrozenTrial) -> None:
        """Keep a finished trial's outcome for replay, when its config trained to it."""
        key = trial.user_attrs.get(CANONICAL_ATTR)
        if key is None or key in self._outcomes:
            return
        reason = str(trial.user_attrs.get(REASON_ATTR, ""))
        if trial.state == TrialState.FAIL and not reason.startswith("diverged"):
            return
        self._outcomes[key] = Outcome(
            trial.state,
            trial.value,
            dict(trial.intermediate_values),
            reason,
            trial.number,
            dict(trial.constraints),
        )

    @staticmethod
    def replay(
        study: optuna.Study, mirror: WriteThroughStorage, trial_id: int, outcome: Outcome
    ) -> TrialState:
        """Record ``outcome`` as trial ``trial_id``'s own (the same training already ran)."""
        mirror.set_trial_user_attr(trial_id, DUPLICATE_ATTR, outcome.number)
        for name, value in outcome.constraints.items():
            mirror.set_trial_system_attr(trial_id, _internals.constraint_key(name), value)
        for step, value in sorted(outcome.intermediate.items()):
            mirror.set_trial_intermediate_value(trial_id, step, value)
        if outcome.reason:
            mirror.set_trial_user_attr(trial_id, REASON_ATTR, outcome.reason)
        final = outcome.value if outcome.state == TrialState.COMPLETE else None
        study.tell(trial_id, final, state=outcome.state, skip_if_finished=True)
        return outcome.state
