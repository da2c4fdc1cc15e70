"""A staged search: tune the base first, then the per-group deviations around it.

For relative search spaces. During the first ``base_trials`` finished trials every deviation is
held neutral (scheme ``single`` where the space has it, every ``<label>.lr_scale`` 1, every
decay kept, no override), so TPE spends them on the base optimizer, lr and settings alone;
after that TPE searches everything, having seen where the base is good. Names are the
relative parametrization's (``groupwise.sampling._relative``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

__all__ = ["StagedSampler"]


def _neutral(name: str, distribution: BaseDistribution) -> tuple[bool, Any]:
    """(whether ``name`` is a deviation, its neutral value)."""
    choices = getattr(distribution, "choices", ())
    if name == "scheme" and "single" in choices:
        return True, "single"
    if name.endswith(".lr_scale"):
        return True, 1.0
    if name.endswith(".decay") and set(choices) == {True, False}:  # not schedule.decay
        return True, True
    if name.endswith(".optimizer") and "base" in choices:
        return True, "base"
    return False, None


class StagedSampler(optuna.samplers.BaseSampler):
    """TPE that holds the deviations neutral for the first ``base_trials`` finished trials."""

    def __init__(self, base_trials: int = 8, seed: int | None = None, **tpe: Any) -> None:
        self.base_trials = base_trials
        self.inner = optuna.samplers.TPESampler(seed=seed, **tpe)

    def _staging(self, study: optuna.Study) -> bool:
        states = (TrialState.COMPLETE, TrialState.PRUNED)
        return len(study.get_trials(deepcopy=False, states=states)) < self.base_trials

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        space: dict[str, BaseDistribution] = self.inner.infer_relative_search_space(study, trial)
        if self._staging(study):
            return {k: d for k, d in space.items() if not _neutral(k, d)[0]}
        return space

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: Mapping[str, BaseDistribution]
    ) -> dict[str, Any]:
        sampled: dict[str, Any] = self.inner.sample_relative(study, trial, dict(search_space))
        return sampled

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, name: str, distribution: BaseDistribution
    ) -> Any:
        deviation, value = _neutral(name, distribution)
        if deviation and self._staging(study):
            return value
        return self.inner.sample_independent(study, trial, name, distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.inner.before_trial(study, trial)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Any,
    ) -> None:
        self.inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()
